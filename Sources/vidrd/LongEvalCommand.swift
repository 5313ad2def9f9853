import ArgumentParser
import Foundation
import VidrdEval
import VidrdMedia
import VidrdPlugins
import VidrdRuntime

/// `vidrd longeval`: long-video measurement (docs/PLUGINS.md, "Long-video measurement"): what a
/// viewer sees over many clips, so that a loop cannot pass for a smooth continuation.
struct LongEvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "longeval",
        abstract: "Measure novelty, replay, seams, cadence, prompt adherence over time and motion continuity of long streams, per chain.")

    static let defaultPrompts = [
        "a red circle moving left on a blue background",
        "a green square moving up on a white background",
        "a yellow star moving right on a black background",
        "a white disc falling over a purple backdrop",
    ].joined(separator: "|")
    /// The adherence columns of the issue (clip 11 needs 12 clips).
    static let defaultScoreClips = [0, 3, 7, 11]

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Prompts, separated by '|' (in the procedural dataset's vocabulary to be scored).") var prompts = defaultPrompts
    @Option(help: "Seeds, comma-separated; at least 2 (novelty compares seeds of one prompt).") var seeds = "1,2"
    @Option(help: "Clips per stream (at least 12 for the clip-11 columns, unless --at is given).") var clips = 16
    @Option(help: "Denoising steps.") var steps = 25
    @Option(help: schedulerHelp) var scheduler: SchedulerKind?
    @Option(help: "Guidance scale (default: the model's recommendation).") var guidance: Float?
    @Option(help: "Frames per clip (N).") var frames = 16
    @Option(help: "Prompt frames (M).") var promptFrames = 4
    @Option(help: "Chains, ';'-separated, each CHAIN[@all|new] with CHAIN as in --strategy (e.g. fnr,pns:alpha=1,dsg:beta=0.4).")
    var chains = "fnr,pns,dsg@all;fnr,pns,dsg@new;none@all"
    @Option(help: "More clip indices to score adherence at, comma-separated (added to 0,3,7,11 where the stream is long enough).")
    var at: String?
    @Option(help: "Write all numbers, per chain, to this JSON file.") var json: String?
    @Option(help: "Write each stream's emitted frames as WebP under this folder.") var framesOut: String?

    /// One `--chains` entry.
    struct ChainRequest {
        let text: String
        let chain: String
        let specs: [StrategySpec]
        let emission: EmissionMode

        init(_ text: String) throws {
            self.text = text
            var chain = text, emission = EmissionMode.all
            if let at = text.lastIndex(of: "@") {
                let mode = text[text.index(after: at)...].trimmingCharacters(in: .whitespaces)
                guard let e = EmissionMode(rawValue: mode) else {
                    throw ValidationError("--chains: \"\(text)\": emission must be all or new, got \"\(mode)\"")
                }
                emission = e
                chain = String(text[..<at])
            }
            self.chain = chain.trimmingCharacters(in: .whitespaces)
            self.emission = emission
            do { specs = try StrategySpec.parseList(self.chain) } catch {
                throw ValidationError("--chains: \"\(text)\": \(error)")
            }
        }
    }

    var promptList: [String] {
        prompts.split(separator: "|").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func seedList() throws -> [UInt64] {
        try seeds.split(separator: ",").map { s in
            guard let v = UInt64(s.trimmingCharacters(in: .whitespaces)) else { throw ValidationError("--seeds: bad seed \"\(s)\"") }
            return v
        }
    }

    func extraClips() throws -> [Int] {
        guard let at else { return [] }
        return try at.split(separator: ",").map { s in
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 0 else { throw ValidationError("--at: bad clip index \"\(s)\"") }
            return v
        }
    }

    /// The adherence clip indices: 0, 3, 7, 11 and --at, those the streams reach.
    func scoreClips() throws -> [Int] {
        Array(Set(Self.defaultScoreClips + (try extraClips())).filter { $0 < clips }).sorted()
    }

    func chainRequests() throws -> [ChainRequest] {
        let list = try chains.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.map(ChainRequest.init)
        guard !list.isEmpty else { throw ValidationError("--chains names no chain") }
        return list
    }

    func validate() throws {
        let seeds = try seedList()
        guard Set(seeds).count >= 2 else {
            throw ValidationError("--seeds needs at least 2 different seeds: novelty divides by the distance between seeds of one prompt (got \"\(self.seeds)\")")
        }
        guard !promptList.isEmpty else { throw ValidationError("--prompts names no prompt") }
        guard clips >= 3 else { throw ValidationError("--clips must be at least 3 (novelty compares clip k with clip k-2)") }
        let extra = try extraClips()
        if extra.isEmpty, clips < 12 {
            throw ValidationError("--clips must be at least 12 to score clip 11 (got \(clips)); give --at with the clip indices to score instead")
        }
        if let beyond = extra.first(where: { $0 >= clips }) {
            throw ValidationError("--at \(beyond) is beyond the last clip (\(clips - 1))")
        }
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        guard frames > 0 else { throw ValidationError("--frames must be positive") }
        guard (0...frames).contains(promptFrames) else { throw ValidationError("--prompt-frames must be in 0...\(frames)") }
        _ = try chainRequests()
    }

    func run() throws {
        let registry = StrategyRegistry.builtIn()
        let pipeline = try modelOptions.load()
        let guidance = self.guidance ?? pipeline.defaultGuidanceScale
        let requests = try chainRequests()
        let seeds = try seedList()
        let at = try scoreClips()
        let prompts = promptList

        func configuration(_ r: ChainRequest, prompt: String, seed: UInt64) -> StreamConfiguration {
            var c = StreamConfiguration(prompt: prompt)
            c.strategies = r.specs
            c.emission = r.emission
            c.steps = steps
            c.scheduler = scheduler
            c.guidanceScale = guidance
            c.frames = frames
            c.promptFrames = promptFrames
            c.seed = seed
            return c
        }
        // Refuse an unknown strategy or a bad chain before hours of generation, not after.
        for r in requests {
            do { _ = try VideoStream(pipeline: pipeline, configuration: configuration(r, prompt: prompts[0], seed: seeds[0]), registry: registry) } catch {
                throw ValidationError("--chains: \"\(r.text)\": \(error)")
            }
        }
        for p in prompts {
            let s = ScenePrompt(parsing: p)
            var missing: [String] = []
            if s.colour == nil { missing.append("colour") }
            if s.background == nil { missing.append("background") }
            if s.scoredMotion == nil { missing.append("a scored motion") }
            if !missing.isEmpty { Self.log("note: \"\(p)\" names no \(missing.joined(separator: ", ")); not scored for it") }
        }

        let report = LongEvalReport(scoreClips: at)
        Self.output(report.header)
        var results: [LongEvalReport.ChainResult] = []
        for (ci, r) in requests.enumerated() {
            var streams: [EvalStream] = []
            for (pi, prompt) in prompts.enumerated() {
                for seed in seeds {
                    var stream = try VideoStream(pipeline: pipeline, configuration: configuration(r, prompt: prompt, seed: seed), registry: registry)
                    var out: [Tensor] = [], seconds = 0.0
                    for _ in 0..<clips {
                        let start = Date()
                        let clip = try stream.nextClip()
                        seconds += Date().timeIntervalSince(start)
                        out.append(clip.frames)
                    }
                    let s = EvalStream(prompt: prompt, seed: seed, clips: out, generationSeconds: seconds)
                    Self.log("\(r.text) \"\(prompt)\" seed \(seed): \(clips) clips, \(s.emittedFrames) frames in \(String(format: "%.1f", seconds)) s (\(String(format: "%.2f", Double(s.emittedFrames) / Swift.max(seconds, 1e-9))) frames/s)")
                    if let framesOut {
                        try Self.writeFrames(s, to: "\(framesOut)/\(ci)-\(Self.slug(r.text))/p\(pi)-seed\(seed)")
                    }
                    streams.append(s)
                }
            }
            let result = LongEvalReport.ChainResult(chain: r.chain, emit: r.emission.rawValue, spec: r.text,
                                                    metrics: LongEvaluation(streams, at: at))
            Self.output(report.row(result))
            results.append(result)
            // Rewritten after every chain so a long run that is stopped keeps what it measured.
            if let json {
                let settings = LongEvalReport.Settings(model: try GenerateCommand.defaultModel(modelOptions.model), prompts: prompts, seeds: seeds,
                                                       clips: clips, steps: steps, scheduler: scheduler?.rawValue, guidance: guidance, frames: frames,
                                                       promptFrames: promptFrames, scoreClips: at)
                try AtomicFile.write(try report.json(settings: settings, chains: results), to: json)
            }
        }
    }

    /// Unbuffered, so that a long run's table grows row by row in a redirected file.
    static func output(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    static func log(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    static func slug(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || $0 == "." || $0 == "-" ? $0 : "_" })
    }

    /// frame_NNNNN.webp (stream-wide numbering) and stream.webp (animated), as `vidrd generate` writes.
    static func writeFrames(_ s: EvalStream, to dir: String) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var animation: AnimatedWebPWriter?
        var number = 0
        for clip in s.clips {
            let (h, w) = Frames.dimensions(clip)
            for i in 0..<Frames.count(clip) {
                let image = RGBImage(width: w, height: h, unitFloats: Frames.frame(clip, i))
                try AtomicFile.write(Data(try WebP.encode(image, compression: .lossy(quality: 90))),
                                     to: "\(dir)/frame_\(String(format: "%05d", number)).webp")
                if animation == nil { animation = try AnimatedWebPWriter(width: w, height: h, fps: 8, compression: .lossy(quality: 90)) }
                try animation?.add(image)
                number += 1
            }
        }
        if let animation { try AtomicFile.write(Data(try animation.finish()), to: "\(dir)/stream.webp") }
    }
}
