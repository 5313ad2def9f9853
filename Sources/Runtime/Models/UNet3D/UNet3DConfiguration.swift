/// The subset of diffusers' `UNet3DConditionModel` config that determines the network.
public struct UNet3DConfiguration: Sendable, Equatable {
    public enum DownBlockType: String, Sendable { case crossAttention = "CrossAttnDownBlock3D", plain = "DownBlock3D" }
    public enum UpBlockType: String, Sendable { case crossAttention = "CrossAttnUpBlock3D", plain = "UpBlock3D" }

    public var inChannels: Int
    public var outChannels: Int
    public var blockOutChannels: [Int]
    public var downBlockTypes: [DownBlockType]
    public var upBlockTypes: [UpBlockType]
    public var layersPerBlock: Int
    public var normGroups: Int
    public var normEps: Float
    public var crossAttentionDim: Int
    /// diffusers' `attention_head_dim`, which the 3-D U-Net actually uses as the per-head width
    /// of its spatial and temporal transformers (heads = channels / this), while `transformer_in`
    /// uses 8 heads of this width.
    public var attentionHeadDim: [Int]
    public var sampleSize: Int?

    public init(config c: ModelConfig) throws {
        inChannels = try c.int("in_channels", default: 4)
        outChannels = try c.int("out_channels", default: 4)
        blockOutChannels = try c.ints("block_out_channels", default: [320, 640, 1280, 1280])
        let downNames = try c.strings("down_block_types", default: ["CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "CrossAttnDownBlock3D", "DownBlock3D"])
        let upNames = try c.strings("up_block_types", default: ["UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D"])
        downBlockTypes = try downNames.map {
            guard let t = DownBlockType(rawValue: $0) else { throw ModelError.unsupported("\(c.path): down block type \($0)") }
            return t
        }
        upBlockTypes = try upNames.map {
            guard let t = UpBlockType(rawValue: $0) else { throw ModelError.unsupported("\(c.path): up block type \($0)") }
            return t
        }
        layersPerBlock = try c.int("layers_per_block", default: 2)
        normGroups = try c.int("norm_num_groups", default: 32)
        normEps = Float(try c.double("norm_eps", default: 1e-5))
        crossAttentionDim = try c.int("cross_attention_dim", default: 1024)
        if c.has("num_attention_heads") {
            throw ModelError.unsupported("\(c.path): num_attention_heads (diffusers rejects it for UNet3DConditionModel too)")
        }
        attentionHeadDim = try c.intOrInts("attention_head_dim", count: blockOutChannels.count, default: 64)
        sampleSize = try c.optionalInt("sample_size")
        if c.has("time_cond_proj_dim") { throw ModelError.unsupported("\(c.path): time_cond_proj_dim") }
        let act = try c.string("act_fn", default: "silu")
        guard act == "silu" else { throw ModelError.unsupported("\(c.path): act_fn \(act)") }
        guard try c.int("downsample_padding", default: 1) == 1 else { throw ModelError.unsupported("\(c.path): downsample_padding ≠ 1") }
        guard try c.double("mid_block_scale_factor", default: 1) == 1 else { throw ModelError.unsupported("\(c.path): mid_block_scale_factor ≠ 1") }
        try validate(path: c.path)
    }

    func validate(path: String) throws {
        let n = blockOutChannels.count
        guard n > 0, downBlockTypes.count == n, upBlockTypes.count == n else {
            throw ModelError.invalidConfig("\(path): block_out_channels, down_block_types and up_block_types must have the same length")
        }
        guard layersPerBlock > 0 else { throw ModelError.invalidConfig("\(path): layers_per_block must be positive") }
        for (ch, hd) in zip(blockOutChannels, attentionHeadDim) where hd <= 0 || ch % hd != 0 {
            throw ModelError.invalidConfig("\(path): block channels \(ch) are not divisible by attention_head_dim \(hd)")
        }
        for ch in blockOutChannels where ch % normGroups != 0 {
            throw ModelError.invalidConfig("\(path): block channels \(ch) are not divisible by norm_num_groups \(normGroups)")
        }
        if Set(attentionHeadDim).count > 1 {
            // transformer_in would receive a tuple in diffusers, which it cannot build.
            throw ModelError.unsupported("\(path): per-block attention_head_dim lists")
        }
    }

    public var timeEmbeddingDim: Int { blockOutChannels[0] * 4 }
    /// Latent downsampling factor of the U-Net (spatial sizes must divide by it or use the odd-size path).
    public var downsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }
}
