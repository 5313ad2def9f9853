// Uses the products for real, so that compiling and linking them is checked: the runtime's
// kernels and seeded noise, the client's type and a protocol request.
import VidrdClient
import VidrdProtocol
import VidrdRuntime

let kernels = ComputeKernels.active
var random = SeededRandomSource(seed: 7)
let noise = random.standardNormal(count: 4)
let request = OpenSession(prompt: "a red ball bouncing on grass", seed: 7)
print("kernels \(kernels.isa.rawValue); noise \(noise.count) values; \(VidrdClient.self) for \"\(request.prompt)\"")
