import ArgumentParser
import Foundation
import VidrdEval
import VidrdPlugins
import VidrdRuntime

/// `vidrd seams`: the seam measurement of docs/PLUGINS.md.
struct SeamsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "seams",
        abstract: "Measure clip seams and content cycling for none / fnr / fnr+pns / fnr+pns+dsg, emit all vs new.")

    @OptionGroup var modelOptions: ModelOptions
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
        let pipeline = try modelOptions.load()
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
                let m = SeamMetrics.measure(streams) { clip, n in
                    VideoStream.emittedFrames(mode: mode, clip: clip, frames: n, promptFrames: promptFrames)
                }
                print("| \(chain) | \(mode.rawValue) | \(f(m.ratio)) | \(f(m.meanSeam)) | \(f(m.medianInClip)) | \(f(reversal)) |")
            }
        }
    }

    func f(_ x: Double) -> String { String(format: "%.3f", x) }
}
