import Foundation
import Testing

/// `VIDRD_ISA` (docs/RUNTIME.md, "How it computes") as the executables see it: a value the CPU
/// cannot honour is a usage error that names it, before anything runs; one it can is used.
extension DaemonSuite {
    @Suite("VIDRD_ISA in the executables")
    struct KernelEnvironmentTests {
        @Test("vidrd-daemon exits 78 and vidrd 64 naming a bad VIDRD_ISA; generic is accepted")
        func badKernelChoiceIsRefused() throws {
            let daemon = try #require(ClientBinary.locate("vidrd-daemon"), "vidrd-daemon is not built next to the tests")
            let (status, _, stderr) = try ClientBinary.run(
                ["--listen", "127.0.0.1:0"], executable: daemon, timeout: 30, environment: ["VIDRD_ISA": "sse9"])
            #expect(status == 78, "\(stderr)")
            #expect(stderr.contains("VIDRD_ISA=sse9") && stderr.contains("generic, avx2, avx512"), "\(stderr)")

            let vidrd = try #require(ClientBinary.locate("vidrd"), "vidrd is not built next to the tests")
            let (status2, _, stderr2) = try ClientBinary.run(
                ["strategies"], executable: vidrd, timeout: 30, environment: ["VIDRD_ISA": "sse9"])
            #expect(status2 == 64, "\(stderr2)")
            #expect(stderr2.contains("VIDRD_ISA=sse9"), "\(stderr2)")

            let (status3, out3, stderr3) = try ClientBinary.run(
                ["strategies"], executable: vidrd, timeout: 30, environment: ["VIDRD_ISA": "generic"])
            #expect(status3 == 0, "\(stderr3)")
            #expect(String(decoding: out3, as: UTF8.self).contains("fifo"))
        }
    }
}
