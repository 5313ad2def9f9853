import ArgumentParser
import Foundation
import VidrdRuntime
#if canImport(Glibc)
import Glibc
#endif

/// Times the runtime on a model folder; `tools/bench/run.sh` pairs it with the PyTorch baseline.
@main
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vidrd-bench",
        abstract: "Time one U-Net forward (batch 2 × F frames) and a full clip; prints JSON lines.")

    @Option(help: "A diffusers model folder.") var model: String
    @Option(help: "Frames per clip.") var frames = 16
    @Option(parsing: .upToNextOption, help: "Latent sizes (square) for the U-Net forward.") var latents: [Int] = [8, 16]
    @Option(help: "Pixel size of the full-clip benchmark (0 skips it).") var clipSize = 64
    @Option(help: "Denoising steps of the full clip.") var steps = GenerationDefaults.standardSteps
    @Option(help: "Timed repetitions (after one warm-up); the median is reported.") var repeats = 3
    @Option(parsing: .upToNextOption,
            help: "Sessions per U-Net call (each a classifier-free-guidance pair, as the daemon batches them).")
    var sessions: [Int] = [1]
    @Option(help: "How the U-Net and VAE multiply: fp32 (exact, the default) or bf16 (the fast mode; needs AVX-512 BF16).")
    var precision = "fp32"
    @Option(help: "How fp16/bf16 checkpoints are held: checkpoint (16-bit values kept, the default) or fp32 (widened at load: twice the memory; the same bits).")
    var weights = "checkpoint"

    func run() throws {
        ProcessTuning.configureAllocator()
        if let problem = ComputeKernels.active.problem { throw ValidationError(problem) }
        guard let precision = ComputePrecision(name: self.precision) else {
            throw ValidationError("--precision \(self.precision) is not one of \(ComputePrecision.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if let why = ComputePrecision.unavailability(precision) { throw ValidationError(why) }
        guard let storage = WeightStorage(name: weights) else {
            throw ValidationError("--weights \(weights) is not one of \(WeightStorage.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let pipeline = try TextToVideoPipeline(modelDirectory: URL(fileURLWithPath: model), precision: precision, storage: storage)
        let loaded = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        report("load", [loaded])  // the peak RSS so far is the load's (tools/bench/load_bench.sh)
        let prompt = try pipeline.encodePrompt("a red ball bouncing on grass", negativePrompt: "", guidanceScale: pipeline.defaultGuidanceScale)
        var random = SeededRandomSource(seed: 1)
        var ws = Workspace()
        let c = pipeline.unet.inChannels
        for size in latents {
            for n in sessions {
                // One session: two different entries, as tools/bench/bench_torch.py times PyTorch, so
                // both do the same work (identical CFG entries would let the runtime share the
                // U-Net's prefix). Several sessions: each a CFG pair, as the daemon batches them.
                var scalars: [Float] = []
                let per = c * frames * size * size
                for _ in 0..<n {
                    let entry = random.standardNormal(count: per)
                    scalars += entry + (n == 1 ? random.standardNormal(count: per) : entry)
                }
                let sample = Tensor(shape: [2 * n, c, frames, size, size], scalars: scalars)
                let conditioning = try UNet3DConditionModel.TextConditioning.concatenating(Array(repeating: prompt.conditioning, count: n))
                let timesteps = (0..<n).flatMap { i in [Float](repeating: Float(500 - 10 * i), count: 2) }
                let times = try measure(repeats) {
                    _ = try pipeline.unet(sample, timesteps: timesteps, conditioning: conditioning, workspace: &ws)
                }
                report(n == 1 ? "unet_b2f\(frames)_\(size)x\(size)" : "unet_\(n)sessions_b\(2 * n)f\(frames)_\(size)x\(size)", times)
            }
        }
        if clipSize > 0 {
            var config = TextToVideoPipeline.Configuration(prompt: "a red ball bouncing on grass")
            config.steps = steps
            config.frames = frames
            config.height = clipSize
            config.width = clipSize
            let times = try measure(Swift.max(1, repeats / 2)) { _ = try pipeline.generate(config, seed: 3) }
            report("pipeline_\(steps)steps_\(clipSize)px", times)
        }
    }

    func measure(_ n: Int, _ body: () throws -> Void) throws -> [Double] {
        try body()  // warm-up: first-touch page faults, BLAS thread start
        return try (0..<n).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
    }

    func report(_ name: String, _ times: [Double]) {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let sorted = times.sorted()
        let median = sorted[sorted.count / 2]
        print("{\"name\": \"\(name)\", \"impl\": \"swift\", \"isa\": \"\(ComputeKernels.active.isa.rawValue)\", \"precision\": \"\(self.precision)\", \"weights\": \"\(weights)\", \"median_s\": \(String(format: "%.4f", median)), \"min_s\": \(String(format: "%.4f", sorted[0])), \"peak_rss_mb\": \(usage.ru_maxrss / 1024)}")
        fflush(nil)
    }
}
