import ArgumentParser
import Foundation
import VidrdMedia
import VidrdRuntime

@main
struct VidrdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vidrd",
        abstract: "Offline vidrd tool: runs the text-to-video model without a daemon.",
        subcommands: [ClipCommand.self, GenerateCommand.self, SeamsCommand.self, LongEvalCommand.self, StrategiesCommand.self])

    /// Every subcommand that runs the model gets the tuned allocator (docs/RUNTIME.md); set once
    /// here, before parsing, rather than in each subcommand's run().
    static func main() {
        ProcessTuning.configureAllocator()
        // A VIDRD_ISA the CPU cannot honour is a usage error, before anything runs.
        if let problem = ComputeKernels.active.problem { exit(withError: ValidationError(problem)) }
        main(nil)
    }
}

extension ComputePrecision: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
}

extension SchedulerKind: ExpressibleByArgument {
    public init?(argument: String) { self.init(name: argument) }
    public static var allValueStrings: [String] { allCases.map(\.rawValue) }
}

/// The help of every command's --scheduler.
let schedulerHelp = ArgumentHelp(
    "Scheduler: ddim, dpm++ (DPM-Solver++ 2M: 10-15 steps do what DDIM does in 25-50) or euler, configured from the model's scheduler_config.json (default: the model's own; fifo needs ddim).",
    valueName: "name")

/// Options shared by commands that load a model.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: """
        A diffusers model folder (model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/); \
        default: the embedded model, Models/vidrd-tiny.
        """)
    var model: String?

    @Option(help: "fp32 (exact, the default) or bf16 (the fast mode: bf16 weights and products summed in fp32; needs AVX-512 BF16).")
    var precision: ComputePrecision = .fp32

    func load() throws -> TextToVideoPipeline {
        try TextToVideoPipeline(modelDirectory: URL(fileURLWithPath: try GenerateCommand.defaultModel(model)), precision: precision)
    }
}

struct ClipCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clip",
        abstract: "Generate one clip and write its frames (WebP), an animated WebP and optionally the final latents.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Text prompt.") var prompt: String
    @Option(help: "Negative prompt (classifier-free guidance's unconditional text).") var negativePrompt = ""
    @Option(help: "Denoising steps.") var steps = GenerationDefaults.standardSteps
    @Option(help: schedulerHelp) var scheduler: SchedulerKind?
    @Option(help: "Guidance scale; ≤ 1 disables classifier-free guidance (default: the model folder's generation_config.json, else \(GenerationDefaults.standardGuidanceScale)).")
    var guidance: Float?
    @Option(help: "Frames per clip.") var frames = GenerationDefaults.standardFrames
    @Option(help: "Frame height in pixels (default: the model's native size).") var height: Int?
    @Option(help: "Frame width in pixels (default: the model's native size).") var width: Int?
    @Option(help: "Seed of the default noise generator.") var seed: UInt64 = 0
    @Option(help: "Read the initial noise from this safetensors file (tensor \"noise\", shape [1, C, F, h, w]) instead of the seed.")
    var noise: String?
    @Option(help: "Output folder.") var out: String
    @Flag(help: "Also write the final latents to OUT/latents.safetensors (tensor \"latents\").") var saveLatents = false
    @Flag(help: "Decode every frame alone, skipping the temporal-aware decoder's Temp-Conv layers.") var framewiseDecoder = false
    @Option(help: "WebP quality 0–100 (lossy).") var quality: Float = 90
    @Flag(help: "Lossless WebP.") var lossless = false
    @Option(help: "Frames per second of the animated WebP.") var fps: Double = 8

    func validate() throws {
        guard steps > 0 else { throw ValidationError("--steps must be positive") }
        guard frames > 0 else { throw ValidationError("--frames must be positive") }
        guard (0...100).contains(quality) else { throw ValidationError("--quality must be within 0...100") }
        guard fps > 0 else { throw ValidationError("--fps must be positive") }
    }

    func run() throws {
        let pipeline = try modelOptions.load()
        var c = TextToVideoPipeline.Configuration(prompt: prompt)
        c.negativePrompt = negativePrompt
        c.steps = steps
        c.scheduler = scheduler
        c.guidanceScale = guidance ?? pipeline.defaultGuidanceScale
        c.frames = frames
        c.height = height
        c.width = width
        c.temporalDecoding = !framewiseDecoder
        var initialNoise: Tensor?
        if let noise {
            initialNoise = try SafeTensorsFile(path: noise).tensor("noise")
        }
        let start = Date()
        var random = SeededRandomSource(seed: seed)
        let clip = try pipeline.generate(c, initialNoise: initialNoise, random: &random) { p in
            FileHandle.standardError.write("step \(p.step)/\(p.totalSteps)\n".data(using: .utf8)!)
            return true
        }
        let elapsed = Date().timeIntervalSince(start)
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let compression: WebPCompression = lossless ? .lossless : .lossy(quality: quality)
        let (f, h, w) = (clip.frames.shape[0], clip.frames.shape[1], clip.frames.shape[2])
        let animation = try AnimatedWebPWriter(width: w, height: h, fps: fps, compression: compression)
        for i in 0..<f {
            let image = RGBImage(width: w, height: h, unitFloats: clip.frames.scalars[(i * h * w * 3)..<((i + 1) * h * w * 3)])
            try AtomicFile.write(Data(try WebP.encode(image, compression: compression)),
                                 to: "\(out)/\(FrameFiles.name(Int64(i)))")
            try animation.add(image)
        }
        try AtomicFile.write(Data(try animation.finish()), to: "\(out)/clip.webp")
        if saveLatents {
            try SafeTensorsWriter.write([("latents", clip.latents)], to: "\(out)/latents.safetensors",
                                        metadata: ["prompt": prompt, "steps": "\(steps)", "guidance_scale": "\(c.guidanceScale)"])
        }
        print("wrote \(f) frames \(w)×\(h) to \(out) in \(String(format: "%.2f", elapsed)) s")
    }
}
