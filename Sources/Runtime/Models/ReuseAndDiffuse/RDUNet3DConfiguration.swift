extension ReuseAndDiffuse {
    /// The authors' `UNet3DConditionModel.__init__` arguments that determine the network: Stable
    /// Diffusion 2.1's 2-D U-Net config plus their temporal flags.
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
        /// SD's `attention_head_dim`, which (as in diffusers' 2-D U-Net) is the number of heads
        /// per block: block `i` attends with `attentionHeads[i]` heads of `channels / heads` width.
        public var attentionHeads: [Int]
        public var flipSinToCos: Bool
        public var freqShift: Float
        public var sampleSize: Int?
        /// Sinusoidal frame-position embedding added before each temporal attention.
        public var addTempEmbed: Bool
        /// `TemporalConvLayer` after every ResNet.
        public var addTempConv: Bool
        /// Temporal attention only inside the up blocks' transformers.
        public var addTempAttnOnlyOnUpBlocks: Bool

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
            crossAttentionDim = try c.int("cross_attention_dim", default: 1280)
            attentionHeads = try c.intOrInts("attention_head_dim", count: blockOutChannels.count, default: 8)
            flipSinToCos = try c.bool("flip_sin_to_cos", default: true)
            freqShift = Float(try c.double("freq_shift", default: 0))
            sampleSize = try c.optionalInt("sample_size")
            addTempEmbed = try c.bool("add_temp_embed", default: false)
            addTempConv = try c.bool("add_temp_conv", default: false)
            addTempAttnOnlyOnUpBlocks = try c.bool("add_temp_attn_only_on_upblocks", default: false)

            // Options of the authors' class that their released checkpoint does not use; refuse them
            // by name rather than compute something else.
            for flag in ["add_temp_transformer", "prepend_first_frame", "dual_cross_attention", "center_input_sample"]
            where try c.bool(flag, default: false) {
                throw ModelError.unsupported("\(c.path): \(flag) = true")
            }
            if try c.bool("only_cross_attention", default: false) { throw ModelError.unsupported("\(c.path): only_cross_attention") }
            if c.has("class_embed_type") || c.has("num_class_embeds") { throw ModelError.unsupported("\(c.path): class embeddings") }
            let act = try c.string("act_fn", default: "silu")
            guard act == "silu" else { throw ModelError.unsupported("\(c.path): act_fn \(act)") }
            guard try c.string("resnet_time_scale_shift", default: "default") == "default" else {
                throw ModelError.unsupported("\(c.path): resnet_time_scale_shift ≠ default")
            }
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
            for (ch, heads) in zip(blockOutChannels, attentionHeads) where heads <= 0 || ch % heads != 0 {
                throw ModelError.invalidConfig("\(path): block channels \(ch) are not divisible into \(heads) attention heads")
            }
            for ch in blockOutChannels where ch % normGroups != 0 {
                throw ModelError.invalidConfig("\(path): block channels \(ch) are not divisible by norm_num_groups \(normGroups)")
            }
            // The authors' TemporalConvLayer hard-codes nn.GroupNorm(32, C).
            if addTempConv, let ch = blockOutChannels.first(where: { $0 % TemporalConvLayer.groups != 0 }) {
                throw ModelError.invalidConfig("\(path): add_temp_conv needs block channels divisible by 32, got \(ch)")
            }
            if addTempEmbed, let ch = blockOutChannels.first(where: { $0 % 2 != 0 }) {
                throw ModelError.invalidConfig("\(path): add_temp_embed needs even block channels, got \(ch)")
            }
        }

        public var timeEmbeddingDim: Int { blockOutChannels[0] * 4 }
        public var downsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }
    }
}
