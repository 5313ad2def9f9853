import Foundation

public struct CLIPTextConfiguration: Sendable, Equatable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layers: Int
    public var heads: Int
    public var maxPositions: Int
    public var activation: Activation
    public var layerNormEps: Float

    public init(config c: ModelConfig) throws {
        vocabSize = try c.int("vocab_size", default: 49408)
        hiddenSize = try c.int("hidden_size", default: 512)
        intermediateSize = try c.int("intermediate_size", default: 2048)
        layers = try c.int("num_hidden_layers", default: 12)
        heads = try c.int("num_attention_heads", default: 8)
        maxPositions = try c.int("max_position_embeddings", default: 77)
        activation = try Activation(name: c.string("hidden_act", default: "quick_gelu"))
        layerNormEps = Float(try c.double("layer_norm_eps", default: 1e-5))
        guard heads > 0, hiddenSize % heads == 0 else {
            throw ModelError.invalidConfig("\(c.path): hidden_size \(hiddenSize) not divisible by num_attention_heads \(heads)")
        }
    }
}

/// transformers `CLIPTextModel`: token + position embeddings, pre-norm causal transformer,
/// final layer norm; returns `last_hidden_state`, which is what text-to-video pipelines use.
public struct CLIPTextModel: Sendable {
    public let configuration: CLIPTextConfiguration

    struct Layer: Sendable {
        let norm1: LayerNorm
        let attention: AttentionLayer
        let norm2: LayerNorm
        let fc1: Linear
        let fc2: Linear
    }

    let tokenEmbedding: [Float]
    let positionEmbedding: [Float]
    let layers: [Layer]
    let finalNorm: LayerNorm

    public init(directory: URL, storage: WeightStorage = .checkpoint) throws {
        // position_ids is a non-persistent buffer that older exports saved; it carries no weights.
        self = try WeightLoader.loadComponent(directory, baseName: "model", storage: storage,
                                              ignorable: { $0.hasSuffix("embeddings.position_ids") }) { config, weights in
            try CLIPTextModel(configuration: CLIPTextConfiguration(config: config), weights: weights)
        }
    }

    init(configuration c: CLIPTextConfiguration, weights w: WeightLoader) throws {
        configuration = c
        let d = c.hiddenSize
        // transformers ≤ 4 saves CLIPTextModel under `text_model.`; transformers 5 drops the prefix.
        let root = w.has("text_model.embeddings.token_embedding.weight") ? "text_model." : ""
        tokenEmbedding = try w.take("\(root)embeddings.token_embedding.weight", shape: [c.vocabSize, d])
        positionEmbedding = try w.take("\(root)embeddings.position_embedding.weight", shape: [c.maxPositions, d])
        layers = try (0..<c.layers).map { i in
            let p = "\(root)encoder.layers.\(i)"
            return Layer(
                norm1: try w.layerNorm("\(p).layer_norm1", features: d, eps: c.layerNormEps),
                attention: AttentionLayer(
                    heads: c.heads, headDim: d / c.heads,
                    toQ: try w.linear("\(p).self_attn.q_proj", in: d, out: d),
                    toK: try w.linear("\(p).self_attn.k_proj", in: d, out: d),
                    toV: try w.linear("\(p).self_attn.v_proj", in: d, out: d),
                    toOut: try w.linear("\(p).self_attn.out_proj", in: d, out: d)),
                norm2: try w.layerNorm("\(p).layer_norm2", features: d, eps: c.layerNormEps),
                fc1: try w.linear("\(p).mlp.fc1", in: d, out: c.intermediateSize),
                fc2: try w.linear("\(p).mlp.fc2", in: c.intermediateSize, out: d))
        }
        finalNorm = try w.layerNorm("\(root)final_layer_norm", features: d, eps: c.layerNormEps)
    }

    /// `ids`: `batch` sequences of equal length (≤ max positions). Returns `[batch, length, hidden]`.
    public func callAsFunction(_ ids: [[Int32]]) throws -> Tensor {
        let c = configuration, d = c.hiddenSize
        guard let length = ids.first?.count, length > 0, ids.allSatisfy({ $0.count == length }) else {
            throw ModelError.invalidInput("token id sequences must be non-empty and of equal length")
        }
        guard length <= c.maxPositions else {
            throw ModelError.invalidInput("\(length) tokens exceed the text encoder's \(c.maxPositions) positions")
        }
        var x = [Float](repeating: 0, count: ids.count * length * d)
        for (b, seq) in ids.enumerated() {
            for (t, id) in seq.enumerated() {
                guard id >= 0, Int(id) < c.vocabSize else {
                    throw ModelError.invalidInput("token id \(id) is outside the vocabulary (\(c.vocabSize))")
                }
                let dst = (b * length + t) * d
                for j in 0..<d { x[dst + j] = tokenEmbedding[Int(id) * d + j] + positionEmbedding[t * d + j] }
            }
        }
        let rows = ids.count * length
        var h = Tensor(shape: [ids.count, length, d], scalars: x)
        var ws = Workspace()
        for layer in layers {
            let normed = layer.norm1(h)
            var attn = [Float](repeating: 0, count: h.count)
            normed.scalars.withUnsafeBufferPointer { np in
                attn.withUnsafeMutableBufferPointer { ap in
                    layer.attention.selfAttention(np.baseAddress!, rows: rows, sequences: ids.count, length: length,
                                                  layout: .contiguous(length: length), causal: true, into: ap.baseAddress!,
                                                  workspace: &ws)
                }
            }
            h.add(Tensor(shape: h.shape, scalars: attn))
            let mlp = layer.fc2(c.activation(layer.fc1(layer.norm2(h))))
            h.add(mlp)
        }
        return finalNorm(h)
    }
}
