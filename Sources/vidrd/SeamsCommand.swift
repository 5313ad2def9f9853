import ArgumentParser
import Foundation
import VidrdPlugins
import VidrdRuntime

/// `vidrd seams`: the seam measurement of docs/PLUGINS.md.
struct SeamsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seams",
        abstract: "Measure clip seams and content cycling for none / fnr / fnr+pns / fnr+pns+dsg, emit all vs new.")

    @Option(help: "A diffusers model folder (default: Models/vidrd-tiny when it exists).") var model: String?
    @Option(help: "Prompts, separated by '|'.") var prompts = "a red ball bouncing on grass|waves rolling onto a beach|a car driving down a city street|clouds drifting over mountains"
    @Option(help: "Clips per stream.") var clips = 4
    @Option(help: "Denoising steps.") var steps = 50
    @Option(help: "Guidance scale.") var guidance: Float = 10
    @Option(help: "Frames per clip (N).") var frames = 16
    @Option(help: "Prompt frames (M).") var promptFrames = 4
    @Option(help: "Frame height (default: native).") var height: Int?
    @Option(help: "Frame width (default: native).") var width: Int?
    @Option(help: "Seeds, comma-separated; each prompt runs once per seed.") var seeds = "1"
    @Option(help: "Chains to compare, ';'-separated.") var chains = "none;fnr;fnr,pns;fnr,pns,dsg"

    func run() throws {
        let pipeline = try TextToVideoPipeline(modelDirectory: URL(fileURLWithPath: try GenerateCommand.defaultModel(model)))
        let seedList = try seeds.split(separator: ",").map { s -> UInt64 in
            guard let v = UInt64(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("bad seed \(s)") }
            return v
        }
        print("| chain | emit | seam ratio (mean seam / median in-clip) | mean seam | median in-clip | reversal ratio (new frames vs reversed previous / vs previous) |")
        print("| --- | --- | --- | --- | --- | --- |")
        for chain in chains.split(separator: ";").map(String.init) {
            // Generate every stream once with all frames; emit-new is a selection of the same frames.
            var streams: [[Tensor]] = []
            for prompt in prompts.split(separator: "|").map(String.init) {
                for seed in seedList {
                    var c = StreamConfiguration(prompt: prompt)
                    c.strategies = try StrategySpec.parseList(chain)
                    c.steps = steps
                    c.guidanceScale = guidance
                    c.frames = frames
                    c.promptFrames = promptFrames
                    c.height = height
                    c.width = width
                    c.seed = seed
                    c.emission = .all
                    var s = try VideoStream(pipeline: pipeline, configuration: c, registry: .builtIn())
                    streams.append(try (0..<clips).map { _ in try s.nextClip().frames })
                    FileHandle.standardError.write("\(chain) \"\(prompt)\" seed \(seed) done\n".data(using: .utf8)!)
                }
            }
            let reversal = SeamMetrics.reversalRatio(streams, promptFrames: promptFrames)
            for mode in EmissionMode.allCases {
                let m = SeamMetrics.measure(streams, mode: mode, promptFrames: promptFrames)
                print("| \(chain) | \(mode.rawValue) | \(f(m.ratio)) | \(f(m.meanSeam)) | \(f(m.medianInClip)) | \(f(reversal)) |")
            }
        }
    }

    func f(_ x: Double) -> String { String(format: "%.3f", x) }
}

/// The seam metrics (docs/PLUGINS.md, "Seam measurement"). Frames are `[N, H, W, 3]` in [0, 1];
/// the distance of two frames is their mean absolute pixel difference.
enum SeamMetrics {
    static func frame(_ t: Tensor, _ i: Int) -> ArraySlice<Float> {
        let per = t.shape[1] * t.shape[2] * t.shape[3]
        return t.scalars[(i * per)..<((i + 1) * per)]
    }

    static func distance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        var s = 0.0
        for (x, y) in zip(a, b) { s += Double(abs(x - y)) }
        return s / Double(a.count)
    }

    /// Seam: last emitted frame of clip i vs first emitted frame of clip i+1, averaged over all
    /// seams; in-clip: every pair of consecutive emitted frames of one clip, median.
    static func measure(_ streams: [[Tensor]], mode: EmissionMode, promptFrames m: Int) -> (ratio: Double, meanSeam: Double, medianInClip: Double) {
        var seams: [Double] = [], inside: [Double] = []
        for clips in streams {
            var last: ArraySlice<Float>?
            for (i, clip) in clips.enumerated() {
                let idx = VideoStream.emittedFrames(mode: mode, clip: i, frames: clip.shape[0], promptFrames: m)
                guard let first = idx.first else { continue }
                if let last { seams.append(distance(last, frame(clip, first))) }
                for (a, b) in zip(idx, idx.dropFirst()) { inside.append(distance(frame(clip, a), frame(clip, b))) }
                last = frame(clip, idx.last!)
            }
        }
        let meanSeam = seams.reduce(0, +) / Double(Swift.max(seams.count, 1))
        let sorted = inside.sorted()
        let median = sorted.isEmpty ? 0 : sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        return (meanSeam / Swift.max(median, 1e-12), meanSeam, median)
    }

    /// Content cycling: for the new frames j ≥ M of clip i+1, the mean distance to clip i's frame
    /// N−1−j (time-reversed) divided by the mean distance to clip i's frame j. Below 1: clip i+1
    /// replays clip i backwards.
    static func reversalRatio(_ streams: [[Tensor]], promptFrames m: Int) -> Double {
        var toReversed = 0.0, toSame = 0.0
        for clips in streams {
            for (a, b) in zip(clips, clips.dropFirst()) {
                let n = a.shape[0]
                for j in m..<n {
                    toReversed += distance(frame(b, j), frame(a, n - 1 - j))
                    toSame += distance(frame(b, j), frame(a, j))
                }
            }
        }
        return toReversed / Swift.max(toSame, 1e-12)
    }
}
