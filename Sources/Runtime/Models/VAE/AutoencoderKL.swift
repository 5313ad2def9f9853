import Foundation

/// Single-head self-attention over the pixels of each image with its own GroupNorm and residual,
/// as in the VAE mid block (diffusers `Attention` with `group_norm`, `residual_connection`).
struct VAEAttention: Sendable {
    let norm: GroupNorm
    let attention: AttentionLayer

    init(_ w: WeightLoader, _ prefix: String, channels: Int, groups: Int, eps: Float) throws {
        norm = try w.groupNorm("\(prefix).group_norm", groups: groups, channels: channels, eps: eps)
        attention = try loadAttention(w, prefix, queryDim: channels, heads: 1, headDim: channels)
    }

    func callAsFunction(_ x: Tensor, images: Int, workspace ws: inout Workspace) -> Tensor {
        let normed = norm(x, samples: images)
        let pixels = x.count / (images * norm.channels)
        var out = x
        var attended = Tensor.uninitializedScalars(x.count)
        normed.scalars.withUnsafeBufferPointer { np in
            attended.withUnsafeMutableBufferPointer { ap in
                attention.selfAttention(np.baseAddress!, rows: images * pixels, sequences: images, length: pixels,
                                        layout: .contiguous(length: pixels), into: ap.baseAddress!, workspace: &ws)
            }
        }
        out.add(Tensor(shape: x.shape, scalars: attended))
        return out
    }
}

/// diffusers `UNetMidBlock2D` without time embedding: ResNet, attention, ResNet.
struct VAEMidBlock: Sendable {
    let resnet0: ResnetBlock2D
    let attention: VAEAttention?
    let resnet1: ResnetBlock2D

    init(_ w: WeightLoader, _ prefix: String, channels: Int, groups: Int, addAttention: Bool) throws {
        resnet0 = try ResnetBlock2D(w, "\(prefix).resnets.0", in: channels, out: channels, timeChannels: nil, groups: groups, eps: 1e-6)
        attention = addAttention ? try VAEAttention(w, "\(prefix).attentions.0", channels: channels, groups: groups, eps: 1e-6) : nil
        resnet1 = try ResnetBlock2D(w, "\(prefix).resnets.1", in: channels, out: channels, timeChannels: nil, groups: groups, eps: 1e-6)
    }

    func callAsFunction(_ x: Tensor, workspace ws: inout Workspace) -> Tensor {
        var h = resnet0(x, timeEmbedding: nil, workspace: &ws)
        if let attention { h = attention(h, images: h.shape[0], workspace: &ws) }
        return resnet1(h, timeEmbedding: nil, workspace: &ws)
    }
}

public struct AutoencoderKLConfiguration: Sendable, Equatable {
    public var inChannels: Int
    public var outChannels: Int
    public var latentChannels: Int
    public var blockOutChannels: [Int]
    public var layersPerBlock: Int
    public var normGroups: Int
    public var scalingFactor: Float
    public var useQuantConv: Bool
    public var usePostQuantConv: Bool
    public var midBlockAddAttention: Bool
    /// The VidRD temporal-aware decoder: Temp-Conv after every ResNet of the decoder's up blocks.
    public var addTemporalConv: Bool

    public init(config c: ModelConfig) throws {
        inChannels = try c.int("in_channels", default: 3)
        outChannels = try c.int("out_channels", default: 3)
        latentChannels = try c.int("latent_channels", default: 4)
        blockOutChannels = try c.ints("block_out_channels", default: [64])
        layersPerBlock = try c.int("layers_per_block", default: 1)
        normGroups = try c.int("norm_num_groups", default: 32)
        scalingFactor = Float(try c.double("scaling_factor", default: 0.18215))
        useQuantConv = try c.bool("use_quant_conv", default: true)
        usePostQuantConv = try c.bool("use_post_quant_conv", default: true)
        midBlockAddAttention = try c.bool("mid_block_add_attention", default: true)
        addTemporalConv = try c.bool("add_temp_conv", default: false)
        for t in try c.strings("down_block_types", default: ["DownEncoderBlock2D"]) where t != "DownEncoderBlock2D" {
            throw ModelError.unsupported("\(c.path): VAE down block type \(t)")
        }
        for t in try c.strings("up_block_types", default: ["UpDecoderBlock2D"]) where t != "UpDecoderBlock2D" {
            throw ModelError.unsupported("\(c.path): VAE up block type \(t)")
        }
        let act = try c.string("act_fn", default: "silu")
        guard act == "silu" else { throw ModelError.unsupported("\(c.path): act_fn \(act)") }
        guard !blockOutChannels.isEmpty, blockOutChannels.allSatisfy({ $0 % normGroups == 0 }) else {
            throw ModelError.invalidConfig("\(c.path): block_out_channels must be non-empty and divisible by norm_num_groups")
        }
    }

    /// Pixels per latent along each axis.
    public var downsamplingFactor: Int { 1 << (blockOutChannels.count - 1) }
}

/// diffusers `AutoencoderKL` with the optional VidRD temporal-aware decoder.
public struct AutoencoderKL: Sendable {
    public let configuration: AutoencoderKLConfiguration

    struct UpStage: Sendable {
        var resnets: [ResnetBlock2D]
        var tempConvs: [TemporalConvStack]
        var upsample: Conv2d?
    }
    struct DownStage: Sendable {
        var resnets: [ResnetBlock2D]
        var downsample: Conv2d?
    }

    let encoderConvIn: Conv2d
    let encoderDown: [DownStage]
    let encoderMid: VAEMidBlock
    let encoderNormOut: GroupNorm
    let encoderConvOut: Conv2d
    let quantConv: Conv2d?

    let postQuantConv: Conv2d?
    let decoderConvIn: Conv2d
    let decoderMid: VAEMidBlock
    let decoderUp: [UpStage]
    let decoderNormOut: GroupNorm
    let decoderConvOut: Conv2d

    public init(directory: URL, precision: ComputePrecision = .fp32, storage: WeightStorage = .checkpoint) throws {
        self = try WeightLoader.loadComponent(directory, baseName: "diffusion_pytorch_model", precision: precision,
                                                  storage: storage) { config, weights in
            try AutoencoderKL(configuration: AutoencoderKLConfiguration(config: config), weights: weights)
        }
    }

    init(configuration c: AutoencoderKLConfiguration, weights w: WeightLoader) throws {
        configuration = c
        let ch = c.blockOutChannels, groups = c.normGroups, lat = c.latentChannels
        encoderConvIn = try w.conv2d("encoder.conv_in", in: c.inChannels, out: ch[0], kernel: 3)
        var down: [DownStage] = []
        var outC = ch[0]
        for i in 0..<ch.count {
            let inC = outC
            outC = ch[i]
            var s = DownStage(resnets: [], downsample: nil)
            for j in 0..<c.layersPerBlock {
                s.resnets.append(try ResnetBlock2D(w, "encoder.down_blocks.\(i).resnets.\(j)", in: j == 0 ? inC : outC,
                                                   out: outC, timeChannels: nil, groups: groups, eps: 1e-6))
            }
            if i < ch.count - 1 {
                // diffusers pads right/bottom by one, then convolves with stride 2 and no padding.
                s.downsample = try w.conv2d("encoder.down_blocks.\(i).downsamplers.0.conv", in: outC, out: outC, kernel: 3,
                                            stride: 2, asymmetricPadding: (0, 0, 1, 1))
            }
            down.append(s)
        }
        encoderDown = down
        encoderMid = try VAEMidBlock(w, "encoder.mid_block", channels: ch[ch.count - 1], groups: groups, addAttention: c.midBlockAddAttention)
        encoderNormOut = try w.groupNorm("encoder.conv_norm_out", groups: groups, channels: ch[ch.count - 1], eps: 1e-6)
        encoderConvOut = try w.conv2d("encoder.conv_out", in: ch[ch.count - 1], out: 2 * lat, kernel: 3)
        quantConv = c.useQuantConv ? try w.conv2d("quant_conv", in: 2 * lat, out: 2 * lat, kernel: 1) : nil

        postQuantConv = c.usePostQuantConv ? try w.conv2d("post_quant_conv", in: lat, out: lat, kernel: 1) : nil
        decoderConvIn = try w.conv2d("decoder.conv_in", in: lat, out: ch[ch.count - 1], kernel: 3)
        decoderMid = try VAEMidBlock(w, "decoder.mid_block", channels: ch[ch.count - 1], groups: groups, addAttention: c.midBlockAddAttention)
        var up: [UpStage] = []
        let reversed = Array(ch.reversed())
        outC = reversed[0]
        for i in 0..<reversed.count {
            let prevC = outC
            outC = reversed[i]
            var s = UpStage(resnets: [], tempConvs: [], upsample: nil)
            for j in 0..<(c.layersPerBlock + 1) {
                let p = "decoder.up_blocks.\(i)"
                s.resnets.append(try ResnetBlock2D(w, "\(p).resnets.\(j)", in: j == 0 ? prevC : outC, out: outC,
                                                   timeChannels: nil, groups: groups, eps: 1e-6))
                if c.addTemporalConv {
                    s.tempConvs.append(try .vae(w, "\(p).temp_convs.\(j)", channels: outC, groups: groups))
                }
            }
            if i < reversed.count - 1 {
                s.upsample = try w.conv2d("decoder.up_blocks.\(i).upsamplers.0.conv", in: outC, out: outC, kernel: 3)
            }
            up.append(s)
        }
        decoderUp = up
        decoderNormOut = try w.groupNorm("decoder.conv_norm_out", groups: groups, channels: ch[0], eps: 1e-6)
        decoderConvOut = try w.conv2d("decoder.conv_out", in: ch[0], out: c.outChannels, kernel: 3)
    }

    /// Decodes latents `[F, C, h, w]` (already divided by the scaling factor) of one clip to
    /// images `[F, 3, H, W]` in [-1, 1]-ish range. With `temporal` (and a temporal-aware decoder)
    /// the Temp-Conv layers see all `F` frames jointly; otherwise every frame decodes alone.
    /// A one-frame clip skips Temp-Conv, as the VidRD authors' decoder and the reference
    /// (tools/reference/temporal_vae.py) do: the module was trained on clips, and on one frame its
    /// GroupNorm statistics and zero-padded 3-tap conv are a different function, not the identity.
    ///
    /// `preemption`, when given, is called between the decoder's layers with the share of layers
    /// done, as in `UNet3DConditionModel.callAsFunction`.
    public func decode(_ z: Tensor, temporal: Bool = true, workspace ws: inout Workspace,
                       preemption: ((Double) -> Void)? = nil) throws -> Tensor {
        guard z.rank == 4, z.shape[1] == configuration.latentChannels else {
            throw ModelError.invalidInput("VAE latents must be [frames, \(configuration.latentChannels), h, w], got \(z.shape)")
        }
        var x = ClipLayout.imagesToChannelsLast(z)
        let frames = x.shape[0]
        if let postQuantConv { x = postQuantConv(x, workspace: &ws) }
        x = decoderConvIn(x, workspace: &ws)
        x = decoderMid(x, workspace: &ws)
        let points = 1 + decoderUp.reduce(0) { $0 + $1.resnets.count }
        var passed = 0
        func preemptionPoint() {
            guard let preemption else { return }
            passed += 1
            if passed < points { preemption(Double(passed) / Double(points)) }
        }
        preemptionPoint()
        for stage in decoderUp {
            for j in 0..<stage.resnets.count {
                x = stage.resnets[j](x, timeEmbedding: nil, workspace: &ws)
                if temporal, configuration.addTemporalConv, frames > 1 {
                    x = stage.tempConvs[j](x, geometry: ClipGeometry(batch: 1, frames: frames, height: x.shape[1], width: x.shape[2]))
                }
                preemptionPoint()
            }
            if let up = stage.upsample {
                x = upsampleNearest(x, height: x.shape[1] * 2, width: x.shape[2] * 2)
                x = up(x, workspace: &ws)
            }
        }
        x = decoderNormOut(x, samples: frames, silu: true)
        x = decoderConvOut(x, workspace: &ws)
        return ClipLayout.imagesFromChannelsLast(x)
    }

    /// Encodes images `[N, 3, H, W]` in [-1, 1] to the posterior mean `[N, C, h, w]` (unscaled).
    public func encodeMean(_ images: Tensor, workspace ws: inout Workspace) throws -> Tensor {
        guard images.rank == 4, images.shape[1] == configuration.inChannels else {
            throw ModelError.invalidInput("VAE input must be [images, \(configuration.inChannels), H, W], got \(images.shape)")
        }
        var x = ClipLayout.imagesToChannelsLast(images)
        x = encoderConvIn(x, workspace: &ws)
        for stage in encoderDown {
            for r in stage.resnets { x = r(x, timeEmbedding: nil, workspace: &ws) }
            if let d = stage.downsample { x = d(x, workspace: &ws) }
        }
        x = encoderMid(x, workspace: &ws)
        x = encoderNormOut(x, samples: x.shape[0], silu: true)
        x = encoderConvOut(x, workspace: &ws)
        if let quantConv { x = quantConv(x, workspace: &ws) }
        // Moments are [mean, logvar] along channels; keep the mean.
        let lat = configuration.latentChannels
        let rows = x.count / (2 * lat)
        var mean = [Float](repeating: 0, count: rows * lat)
        for r in 0..<rows { for c in 0..<lat { mean[r * lat + c] = x.scalars[r * 2 * lat + c] } }
        return ClipLayout.imagesFromChannelsLast(Tensor(shape: [x.shape[0], x.shape[1], x.shape[2], lat], scalars: mean))
    }
}
