import ArgumentParser
import Foundation
import VidrdMedia
import VidrdPlugins
import VidrdRuntime

/// `vidrd generate`: an endless-video stream without a daemon, through the same `VideoStream`
/// the daemon uses.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Generate K clips of one stream with the VidRD noise strategies; write WebP frames and one animated WebP.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Text prompt.") var prompt: String
    @Option(help: "Negative prompt (default: none, or the preset's).") var negativePrompt: String?
    @Option(help: "Sampling preset: vidrd-paper (the VidRD authors' released sampling: 16 frames of 256×256, 50 steps, guidance 10, negative prompt \"watermark\", M = 4, α = 4, β = 0.4, all frames emitted, PyTorch seeds). Other options override it.")
    var preset: String?
    @Option(help: "With --preset vidrd-paper: the authors' noise_alpha (PYoCo prior of clip 0).") var noiseAlpha: Double?
    @Option(help: "Noise generator for --seed: vidrd | torch (torch.randn bit for bit) | torch-rd (torch, in the VidRD authors' draw order).")
    var noiseGenerator: String?
    @Option(help: "Number of clips.") var clips = 3
    @Option(help: "Strategy chain: NAME[:PARAM=VALUE[:PARAM=VALUE...]], comma-separated, e.g. fnr,pns:alpha=2,dsg:beta=0.3 (default: plugins.conf's chain).")
    var strategy: String?
    @Option(help: "PNS α (needs pns in the chain).") var alpha: Double?
    @Option(help: "DSG β (needs dsg in the chain).") var beta: Double?
    @Option(help: "M, prompt frames (default: plugins.conf's, else 4).") var promptFrames: Int?
    @Option(help: "Emitted frames: all | new (default: plugins.conf's).") var emit: String?
    @Option(help: "Seed of the noise generator (default 0, or the preset's).") var seed: UInt64?
    @Option(help: "Replay this noise tape (safetensors, noise.0, noise.1, …) instead of the seed.") var tape: String?
    @Option(help: "Write the stream's noise draws as a tape to this file.") var recordTape: String?
    @Option(help: "Denoising steps (default \(GenerationDefaults.standardSteps), or the preset's).") var steps: Int?
    @Option(help: schedulerHelp) var scheduler: SchedulerKind?
    @Option(help: "Guidance scale; ≤ 1 disables classifier-free guidance (default: the model folder's generation_config.json, else \(GenerationDefaults.standardGuidanceScale)).")
    var guidance: Float?
    @Option(help: "Frames per clip (N; default \(GenerationDefaults.standardFrames), or the preset's).") var frames: Int?
    @Option(help: "Frame height in pixels (default: the model's native size).") var height: Int?
    @Option(help: "Frame width in pixels (default: the model's native size).") var width: Int?
    @Option(help: "plugins.conf to read (default: ./plugins.conf when it exists).") var pluginsConf: String?
    @Option(help: "Output folder.") var out: String
    @Flag(help: "Also write each clip's latents and initial noise to OUT/clip_K.safetensors.") var saveLatents = false
    @Option(help: "WebP quality 0–100 (lossy).") var quality: Float = 90
    @Flag(help: "Lossless WebP.") var lossless = false
    @Option(help: "Frames per second of the animated WebP.") var fps: Double = 8

    func validate() throws {
        guard clips > 0 else { throw ValidationError("--clips must be positive") }
        guard (0...100).contains(quality) else { throw ValidationError("--quality must be within 0...100") }
        guard fps > 0 else { throw ValidationError("--fps must be positive") }
        if let emit, EmissionMode(rawValue: emit) == nil { throw ValidationError("--emit must be all or new") }
        if let preset, StreamPreset(rawValue: preset) == nil {
            throw ValidationError("--preset must be one of \(StreamPreset.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        if noiseAlpha != nil, preset == nil { throw ValidationError("--noise-alpha needs --preset vidrd-paper") }
        if let noiseGenerator, NoiseGenerator(rawValue: noiseGenerator) == nil {
            throw ValidationError("--noise-generator must be one of \(NoiseGenerator.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    static func defaultModel(_ given: String?) throws -> String {
        if let given { return given }
        if let embedded = EmbeddedModel.locate() { return embedded.path }
        throw ValidationError("--model is required (\(EmbeddedModel.relativePath) is not in this checkout)")
    }

    static func registry(_ conf: String?) throws -> StrategyRegistry {
        if let conf { return try StrategyRegistry.load(conf: conf) }
        if FileManager.default.fileExists(atPath: "plugins.conf") { return try StrategyRegistry.load(conf: "plugins.conf") }
        return StrategyRegistry.builtIn()
    }

    func run() throws {
        let registry = try Self.registry(pluginsConf)
        let pipeline = try modelOptions.load()
        var c = StreamConfiguration(prompt: prompt, registry: registry)
        c.guidanceScale = pipeline.defaultGuidanceScale
        if let preset = preset.flatMap(StreamPreset.init(rawValue:)) {
            preset.apply(to: &c, noiseAlpha: noiseAlpha ?? StreamPreset.authorsNoiseAlpha)
        }
        if let negativePrompt { c.negativePrompt = negativePrompt }
        if let seed { c.seed = seed }
        if let steps { c.steps = steps }
        if let scheduler { c.scheduler = scheduler }
        if let guidance { c.guidanceScale = guidance }
        if let frames { c.frames = frames }
        if let height { c.height = height }
        if let width { c.width = width }
        if let g = noiseGenerator.flatMap(NoiseGenerator.init(rawValue:)) { c.noiseGenerator = g }
        c.tapePath = tape
        if let strategy { c.strategies = try StrategySpec.parseList(strategy) }
        func setParameter(_ strategy: String, _ name: String, _ value: Double, _ flag: String) throws {
            guard let i = c.strategies.firstIndex(where: { $0.name == strategy }) else {
                throw ValidationError("\(flag) needs \(strategy) in the chain (\(c.strategies.map(\.name).joined(separator: ",")))")
            }
            c.strategies[i].parameters[name] = .double(value)
        }
        if let alpha { try setParameter("pns", "alpha", alpha, "--alpha") }
        if let beta { try setParameter("dsg", "beta", beta, "--beta") }
        if let promptFrames { c.promptFrames = promptFrames }
        if let emit { c.emission = EmissionMode(rawValue: emit)! }
        var stream = try VideoStream(pipeline: pipeline, configuration: c, registry: registry)

        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let compression: WebPCompression = lossless ? .lossless : .lossy(quality: quality)
        var animation: AnimatedWebPWriter?
        var draws: [Tensor] = []
        let start = Date()
        FileHandle.standardError.write(
            "chain \(stream.chain.joined(separator: ",")), M = \(c.promptFrames), emit \(c.emission.rawValue), steps \(c.steps), guidance \(c.guidanceScale), scheduler \(stream.scheduler.kind.rawValue), noise \(c.noiseGenerator.rawValue) seed \(c.seed)\n"
                .data(using: .utf8)!)
        for k in 0..<clips {
            let clip = try stream.nextClip { p in
                FileHandle.standardError.write("clip \(k) step \(p.step)/\(p.totalSteps)\n".data(using: .utf8)!)
                return true
            }
            draws.append(clip.noiseDraw)
            draws += clip.extraNoiseDraws
            let (n, h, w) = (clip.frames.shape[0], clip.frames.shape[1], clip.frames.shape[2])
            if animation == nil { animation = try AnimatedWebPWriter(width: w, height: h, fps: fps, compression: compression) }
            for i in 0..<n {
                let image = RGBImage(width: w, height: h, unitFloats: clip.frames.scalars[(i * h * w * 3)..<((i + 1) * h * w * 3)])
                try AtomicFile.write(Data(try WebP.encode(image, compression: compression)),
                                     to: "\(out)/\(FrameFiles.name(clip.firstFrameNumber + Int64(i)))")
                try animation!.add(image)
            }
            if saveLatents {
                try SafeTensorsWriter.write([("latents", clip.latents), ("initial_noise", clip.initialNoise)],
                                            to: "\(out)/clip_\(k).safetensors",
                                            metadata: ["emitted": clip.emittedFrameIndices.map(String.init).joined(separator: ",")])
            }
            print("clip \(k): frames \(clip.firstFrameNumber)…\(clip.firstFrameNumber + Int64(n) - 1) (clip frames \(clip.emittedFrameIndices.first.map(String.init) ?? "-")…\(clip.emittedFrameIndices.last.map(String.init) ?? "-"))")
        }
        if let animation { try AtomicFile.write(Data(try animation.finish()), to: "\(out)/stream.webp") }
        if let recordTape { try NoiseTape.write(draws, to: recordTape, metadata: ["seed": "\(c.seed)", "prompt": prompt]) }
        print("wrote \(stream.framesEmitted) frames of \(clips) clips to \(out) in \(String(format: "%.2f", Date().timeIntervalSince(start))) s")
    }
}

/// `vidrd strategies`: what a session can name.
struct StrategiesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "strategies", abstract: "List the registered noise strategies (built-ins and plugins.conf's libraries).")

    @Option(help: "plugins.conf to read (default: ./plugins.conf when it exists).") var pluginsConf: String?

    func run() throws {
        let r = try GenerateCommand.registry(pluginsConf)
        for s in r.strategies {
            print("\(s.name)\(s.origin == "built-in" ? "" : "  [\(s.origin)]")\n    \(s.summary)")
            for p in s.parameters {
                var range = ""
                if p.minimum != nil || p.maximum != nil {
                    // Bounds are Doubles for every numeric kind; an int parameter's read as ints.
                    func bound(_ b: Double?, _ none: String) -> String {
                        guard let b else { return none }
                        return p.kind == "int" && b == b.rounded() && abs(b) < 1e15 ? String(Int(b)) : "\(b)"
                    }
                    range = " in [\(bound(p.minimum, "-∞")), \(bound(p.maximum, "∞"))]"
                }
                print("    \(p.name): \(p.kind) = \(p.defaultValue)\(range) — \(p.help)")
            }
        }
        print("default chain: \(r.defaultChain.map(\.name).joined(separator: ",")), emit \(r.defaultEmission.rawValue), prompt frames \(r.defaultPromptFrames)")
    }
}
