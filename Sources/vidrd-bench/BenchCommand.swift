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
    @Option(help: "Threads one model call splits over (default: every core).")
    var threads = ComputeThreads.available
    @Option(help: "U-Net calls run side by side, each on a thread of its own with --threads threads, as the daemon's compute threads run sessions' steps (reported: each call's median and the calls per second of all together).")
    var sideBySide = 1

    func validate() throws {
        guard (1...ComputeThreads.available).contains(threads) else {
            throw ValidationError("--threads \(threads) is not in 1...\(ComputeThreads.available) (this machine's cores)")
        }
        guard (1...64).contains(sideBySide) else { throw ValidationError("--side-by-side \(sideBySide) is not in 1...64") }
    }

    func run() throws {
        try ComputeThreads.withLimit(threads) { try runLimited() }
    }

    func runLimited() throws {
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
                let name = n == 1 ? "unet_b2f\(frames)_\(size)x\(size)" : "unet_\(n)sessions_b\(2 * n)f\(frames)_\(size)x\(size)"
                if sideBySide > 1 {
                    let (times, rate) = try measureSideBySide(sideBySide, repeats) { ws in
                        _ = try pipeline.unet(sample, timesteps: timesteps, conditioning: conditioning, workspace: &ws)
                    }
                    report("\(name)_x\(sideBySide)", times, extra: ", \"side_by_side\": \(sideBySide), \"calls_per_s\": \(String(format: "%.2f", rate))")
                    continue
                }
                let times = try measure(repeats) {
                    _ = try pipeline.unet(sample, timesteps: timesteps, conditioning: conditioning, workspace: &ws)
                }
                report(name, times)
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

    /// Runs `body` `repeats` times on each of `calls` threads at once (after one warm-up each, all
    /// warm before any is timed); returns every timed call's seconds and the calls per second
    /// of the whole, from the first timed start to the last end.
    func measureSideBySide(_ calls: Int, _ repeats: Int, _ body: @escaping @Sendable (inout Workspace) throws -> Void) throws -> ([Double], Double) {
        let width = threads
        let results = SideBySideResults(calls)
        let warm = DispatchGroup()
        let start = DispatchSemaphore(value: 0)
        let done = DispatchGroup()
        for i in 0..<calls {
            warm.enter()
            done.enter()
            let thread = Thread {
                ComputeThreads.withLimit(width) {
                    var ws = Workspace()
                    do {
                        try body(&ws)
                        warm.leave()
                        start.wait()
                        var times: [Double] = []
                        for _ in 0..<repeats {
                            let t0 = DispatchTime.now().uptimeNanoseconds
                            try body(&ws)
                            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
                        }
                        results.set(i, .success(times))
                    } catch {
                        warm.leave()
                        results.set(i, .failure(error))
                    }
                    done.leave()
                }
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        warm.wait()
        let t0 = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<calls { start.signal() }
        done.wait()
        let wall = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        var all: [Double] = []
        for r in results.all() { all += try r.get() }
        return (all, Double(calls * repeats) / wall)
    }

    func report(_ name: String, _ times: [Double], extra: String = "") {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        let sorted = times.sorted()
        let median = sorted[sorted.count / 2]
        print("{\"name\": \"\(name)\", \"impl\": \"swift\", \"isa\": \"\(ComputeKernels.active.isa.rawValue)\", \"precision\": \"\(self.precision)\", \"weights\": \"\(weights)\", \"median_s\": \(String(format: "%.4f", median)), \"min_s\": \(String(format: "%.4f", sorted[0])), \"peak_rss_mb\": \(usage.ru_maxrss / 1024), \"threads\": \(threads)\(extra)}")
        fflush(nil)
    }
}

/// Each side-by-side thread's outcome; a lock orders the writes before the reads.
final class SideBySideResults: @unchecked Sendable {
    private let lock = NSLock()
    private var values: [Result<[Double], Error>]
    init(_ count: Int) { values = Array(repeating: .success([]), count: count) }
    func set(_ i: Int, _ r: Result<[Double], Error>) { lock.lock(); values[i] = r; lock.unlock() }
    func all() -> [Result<[Double], Error>] { lock.lock(); defer { lock.unlock() }; return values }
}
