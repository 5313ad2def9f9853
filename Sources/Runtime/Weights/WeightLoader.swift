import Foundation

/// Hands out a component's tensors by diffusers name and keeps account of what was used, so that
/// a load either consumes exactly the checkpoint or fails listing every missing, unexpected and
/// wrongly shaped tensor at once (rather than stopping at the first).
final class WeightLoader {
    let component: String
    private let files: [SafeTensorsFile]
    private var owner: [String: SafeTensorsFile] = [:]
    private var used: Set<String> = []
    private var missing: [String] = []
    private var wrongShape: [String] = []
    /// Tensors a checkpoint may carry that the model does not need (non-persistent buffers
    /// saved by older exporters).
    private let ignorable: (String) -> Bool
    /// How the layers built from this checkpoint multiply (their weights are packed for it).
    let precision: ComputePrecision
    /// Whether 16-bit checkpoint weights stay 16-bit (in exact mode, where the layers can).
    let storage: WeightStorage

    init(component: String, files: [SafeTensorsFile], precision: ComputePrecision = .fp32,
         storage: WeightStorage = .checkpoint, ignorable: @escaping (String) -> Bool = { _ in false }) {
        self.component = component
        self.precision = precision
        self.storage = storage
        self.files = files
        self.ignorable = ignorable
        for f in files { for name in f.entries.keys { owner[name] = f } }
    }

    /// Loads all `.safetensors` weights of a diffusers component folder: a single file, an fp16
    /// variant, or shards listed in an `*.index.json`.
    convenience init(componentDirectory dir: URL, baseName: String, precision: ComputePrecision = .fp32,
                     storage: WeightStorage = .checkpoint, ignorable: @escaping (String) -> Bool = { _ in false }) throws {
        let fm = FileManager.default
        let candidates = ["\(baseName).safetensors", "\(baseName).fp16.safetensors", "\(baseName).bf16.safetensors"]
        var files: [SafeTensorsFile] = []
        if let single = candidates.first(where: { fm.fileExists(atPath: dir.appendingPathComponent($0).path) }) {
            files = [try SafeTensorsFile(path: dir.appendingPathComponent(single).path)]
        } else {
            let index = dir.appendingPathComponent("\(baseName).safetensors.index.json")
            guard fm.fileExists(atPath: index.path) else {
                throw WeightError.cannotOpen(file: dir.appendingPathComponent(candidates[0]).path,
                                             reason: "no safetensors weights in \(dir.path)")
            }
            let data = try Data(contentsOf: index)
            guard let json = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                  let map = json["weight_map"] as? [String: String] else {
                throw WeightError.corruptHeader(file: index.path, detail: "no weight_map object")
            }
            for shard in Set(map.values).sorted() {
                files.append(try SafeTensorsFile(path: dir.appendingPathComponent(shard).path))
            }
        }
        self.init(component: dir.lastPathComponent, files: files, precision: precision, storage: storage, ignorable: ignorable)
    }

    /// Reads a component folder's `config.json` and weights, builds the model, and requires
    /// that the checkpoint was consumed exactly.
    static func loadComponent<Model>(_ directory: URL, baseName: String, precision: ComputePrecision = .fp32,
                                     storage: WeightStorage = .checkpoint,
                                     ignorable: @escaping (String) -> Bool = { _ in false },
                                     build: (ModelConfig, WeightLoader) throws -> Model) throws -> Model {
        if let why = ComputePrecision.unavailability(precision) { throw PrecisionError(message: "\(directory.path): \(why)") }
        let config = try ModelConfig(path: directory.appendingPathComponent("config.json").path)
        let loader = try WeightLoader(componentDirectory: directory, baseName: baseName, precision: precision, storage: storage,
                                      ignorable: ignorable)
        let model = try build(config, loader)
        try loader.finish()
        return model
    }

    func has(_ name: String) -> Bool { owner[name] != nil }

    /// The tensor `name` as fp32, checked against `shape`. A missing or misshapen tensor is
    /// recorded and zeros returned so that loading continues and all problems are reported.
    func take(_ name: String, shape: [Int]) throws -> [Float] {
        guard let file = owner[name], let entry = file.entries[name] else {
            missing.append(name)
            return [Float](repeating: 0, count: shape.reduce(1, *))
        }
        used.insert(name)
        guard entry.shape == shape else {
            wrongShape.append("\(name) is \(entry.shape), expected \(shape)")
            return [Float](repeating: 0, count: shape.reduce(1, *))
        }
        defer { file.release(name) }
        return try file.floats(name)
    }

    /// A layer weight, as `take` checks it, in the checkpoint's own 16-bit values when the
    /// layers keep them (exact fp32 mode with a kernel of ours: the products have the widened
    /// values' bits in half the memory), else as fp32.
    func takeWeight(_ name: String, shape: [Int]) throws -> WeightValues {
        guard storage == .checkpoint, precision == .fp32, ComputeKernels.active.kernelISA != nil,
              let file = owner[name], let entry = file.entries[name], entry.shape == shape,
              let format = entry.dtype.halfFormat else {
            return .floats(try take(name, shape: shape))
        }
        used.insert(name)
        defer { file.release(name) }
        return .halves(try file.halves(name), format)
    }

    func takeIfPresent(_ name: String, shape: [Int]) throws -> [Float]? {
        has(name) ? try take(name, shape: shape) : nil
    }

    /// Throws unless every tensor of the checkpoint was used and none was missing or misshapen.
    func finish() throws {
        let unexpected = owner.keys.filter { !used.contains($0) && !ignorable($0) }.sorted()
        if !missing.isEmpty || !unexpected.isEmpty || !wrongShape.isEmpty {
            throw WeightError.mismatchedTensors(component: component, missing: missing.sorted(),
                                                unexpected: unexpected, wrongShape: wrongShape)
        }
    }

    // MARK: layer builders, named as in diffusers/transformers

    func linear(_ prefix: String, in inF: Int, out outF: Int, bias: Bool = true) throws -> Linear {
        let w = try takeWeight("\(prefix).weight", shape: [outF, inF])
        let b = bias ? try take("\(prefix).bias", shape: [outF]) : nil
        return Linear(weight: w, bias: b, inFeatures: inF, outFeatures: outF, precision: precision)
    }

    /// A linear layer whose bias is optional in the checkpoint (attention projections).
    func linearOptionalBias(_ prefix: String, in inF: Int, out outF: Int) throws -> Linear {
        let w = try takeWeight("\(prefix).weight", shape: [outF, inF])
        let b = try takeIfPresent("\(prefix).bias", shape: [outF])
        return Linear(weight: w, bias: b, inFeatures: inF, outFeatures: outF, precision: precision)
    }

    /// A 1×1 convolution or a linear layer (Transformer2DModel's `proj_in/proj_out` are either,
    /// depending on `use_linear_projection`), returned as a `Linear`.
    func pointwise(_ prefix: String, in inF: Int, out outF: Int) throws -> Linear {
        let shape = owner["\(prefix).weight"]?.entries["\(prefix).weight"]?.shape
        let w = shape?.count == 4
            ? try takeWeight("\(prefix).weight", shape: [outF, inF, 1, 1])
            : try takeWeight("\(prefix).weight", shape: [outF, inF])
        let b = try take("\(prefix).bias", shape: [outF])
        return Linear(weight: w, bias: b, inFeatures: inF, outFeatures: outF, precision: precision)
    }

    func conv2d(_ prefix: String, in inC: Int, out outC: Int, kernel: Int, stride: Int = 1, padding: Int? = nil,
                asymmetricPadding: (top: Int, left: Int, bottom: Int, right: Int)? = nil) throws -> Conv2d {
        let w = try takeWeight("\(prefix).weight", shape: [outC, inC, kernel, kernel])
        let b = try take("\(prefix).bias", shape: [outC])
        return Conv2d(torchWeight: w, bias: b, inChannels: inC, outChannels: outC, kernel: kernel,
                      stride: stride, padding: padding, asymmetricPadding: asymmetricPadding, precision: precision)
    }

    func temporalConv(_ prefix: String, in inC: Int, out outC: Int) throws -> TemporalConv {
        let w = try takeWeight("\(prefix).weight", shape: [outC, inC, 3, 1, 1])
        let b = try take("\(prefix).bias", shape: [outC])
        return TemporalConv(torchWeight: w, bias: b, inChannels: inC, outChannels: outC, precision: precision)
    }

    func groupNorm(_ prefix: String, groups: Int, channels: Int, eps: Float) throws -> GroupNorm {
        try GroupNorm(groups: groups, channels: channels, eps: eps,
                      gamma: try take("\(prefix).weight", shape: [channels]),
                      beta: try take("\(prefix).bias", shape: [channels]))
    }

    func layerNorm(_ prefix: String, features: Int, eps: Float) throws -> LayerNorm {
        LayerNorm(features: features, eps: eps,
                  gamma: try take("\(prefix).weight", shape: [features]),
                  beta: try take("\(prefix).bias", shape: [features]))
    }
}
