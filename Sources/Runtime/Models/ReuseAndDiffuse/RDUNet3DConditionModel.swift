import Foundation

extension ReuseAndDiffuse {
    /// The authors' `UNet3DConditionModel` (`model/modules/unet.py`): Stable Diffusion 2.1's 2-D
    /// U-Net inflated to video (`InflatedConv3d` = the 2-D convolution per frame), Temp-Conv after
    /// each ResNet (`add_temp_conv`) and Temp-Attn inside each transformer block.
    ///
    /// Tensor names are theirs with the `unet.` prefix of `ModelT2V.pth` removed.
    public struct UNet3DConditionModel: Sendable {
        public let configuration: UNet3DConfiguration

        struct Stage: Sendable {
            var resnets: [ResnetBlock2D] = []
            var tempConvs: [TemporalConvLayer] = []   // empty without add_temp_conv
            var attentions: [Transformer3DModel] = [] // empty for plain blocks
            var resample: Conv2d?                     // down: stride-2 conv; up: conv after nearest ×2

            /// Their order inside a layer: ResNet → Temp-Conv → transformer.
            func layer(_ j: Int, _ x: Tensor, geometry g: ClipGeometry, timeEmbedding: Tensor,
                       conditioning: VidrdRuntime.UNet3DConditionModel.TextConditioning?, workspace ws: inout Workspace) -> Tensor {
                // Their ResnetBlock3D normalises 5-D (b, c, f, h, w) tensors: statistics per clip.
                var h = resnets[j](x, timeEmbedding: timeEmbedding, normSamples: g.batch, workspace: &ws)
                if !tempConvs.isEmpty { h = tempConvs[j](h, geometry: g) }
                if !attentions.isEmpty, let conditioning {
                    let a = attentions[j]
                    h = a(h, geometry: g, context: conditioning.keyValues[a.contextSlot], workspace: &ws)
                }
                return h
            }
        }

        let convIn: Conv2d
        let timeLinear1: Linear
        let timeLinear2: Linear
        let down: [Stage]
        let mid: Stage
        let up: [Stage]
        let normOut: GroupNorm
        let convOut: Conv2d
        let crossAttentionLayers: [AttentionLayer]

        public init(directory: URL, precision: ComputePrecision = .fp32, storage: WeightStorage = .checkpoint) throws {
            self = try WeightLoader.loadComponent(directory, baseName: "diffusion_pytorch_model", precision: precision,
                                                  storage: storage) { config, weights in
                try UNet3DConditionModel(configuration: UNet3DConfiguration(config: config), weights: weights)
            }
        }

        init(configuration c: UNet3DConfiguration, weights w: WeightLoader) throws {
            configuration = c
            let groups = c.normGroups, eps = c.normEps, temb = c.timeEmbeddingDim
            let ch = c.blockOutChannels
            var slots: [AttentionLayer] = []

            convIn = try w.conv2d("conv_in", in: c.inChannels, out: ch[0], kernel: 3)
            timeLinear1 = try w.linear("time_embedding.linear_1", in: ch[0], out: temb)
            timeLinear2 = try w.linear("time_embedding.linear_2", in: temb, out: temb)

            func transformer(_ prefix: String, channels: Int, heads: Int, temporal: Bool) throws -> Transformer3DModel {
                let t = try Transformer3DModel(w, prefix, channels: channels, heads: heads, contextDim: c.crossAttentionDim,
                                               groups: groups, addTempAttn: temporal, addTempEmbed: c.addTempEmbed,
                                               contextSlot: slots.count)
                slots.append(t.crossAttention)
                return t
            }
            func addLayer(to s: inout Stage, _ p: String, _ j: Int, in inC: Int, out outC: Int,
                          heads: Int?, temporal: Bool) throws {
                s.resnets.append(try ResnetBlock2D(w, "\(p).resnets.\(j)", in: inC, out: outC,
                                                   timeChannels: temb, groups: groups, eps: eps))
                if c.addTempConv { s.tempConvs.append(try TemporalConvLayer(w, "\(p).temp_convs.\(j)", channels: outC)) }
                if let heads {
                    s.attentions.append(try transformer("\(p).attentions.\(j)", channels: outC, heads: heads, temporal: temporal))
                }
            }
            let downTemporal = !c.addTempAttnOnlyOnUpBlocks

            var down: [Stage] = []
            var outC = ch[0]
            for (i, type) in c.downBlockTypes.enumerated() {
                let inC = outC
                outC = ch[i]
                var s = Stage()
                for j in 0..<c.layersPerBlock {
                    try addLayer(to: &s, "down_blocks.\(i)", j, in: j == 0 ? inC : outC, out: outC,
                                 heads: type == .crossAttention ? c.attentionHeads[i] : nil, temporal: downTemporal)
                }
                if i < ch.count - 1 {
                    s.resample = try w.conv2d("down_blocks.\(i).downsamplers.0.conv", in: outC, out: outC, kernel: 3, stride: 2, padding: 1)
                }
                down.append(s)
            }
            self.down = down

            // UNetMidBlock3DCrossAttn: ResNet (→ Temp-Conv), then transformer → ResNet (→ Temp-Conv).
            let midC = ch[ch.count - 1]
            var mid = Stage()
            for j in 0..<2 {
                mid.resnets.append(try ResnetBlock2D(w, "mid_block.resnets.\(j)", in: midC, out: midC, timeChannels: temb,
                                                     groups: groups, eps: eps))
                if c.addTempConv { mid.tempConvs.append(try TemporalConvLayer(w, "mid_block.temp_convs.\(j)", channels: midC)) }
            }
            mid.attentions.append(try transformer("mid_block.attentions.0", channels: midC, heads: c.attentionHeads[ch.count - 1],
                                                  temporal: downTemporal))
            self.mid = mid

            var up: [Stage] = []
            let reversed = Array(ch.reversed())
            let reversedHeads = Array(c.attentionHeads.reversed())
            outC = reversed[0]
            for (i, type) in c.upBlockTypes.enumerated() {
                let prevC = outC
                outC = reversed[i]
                let inC = reversed[Swift.min(i + 1, ch.count - 1)]
                let layers = c.layersPerBlock + 1
                var s = Stage()
                let p = "up_blocks.\(i)"
                for j in 0..<layers {
                    let skipC = j == layers - 1 ? inC : outC
                    let resIn = j == 0 ? prevC : outC
                    try addLayer(to: &s, p, j, in: resIn + skipC, out: outC,
                                 heads: type == .crossAttention ? reversedHeads[i] : nil, temporal: true)
                }
                if i < ch.count - 1 {
                    s.resample = try w.conv2d("\(p).upsamplers.0.conv", in: outC, out: outC, kernel: 3)
                }
                up.append(s)
            }
            self.up = up
            normOut = try w.groupNorm("conv_norm_out", groups: groups, channels: ch[0], eps: eps)
            convOut = try w.conv2d("conv_out", in: ch[0], out: c.outChannels, kernel: 3)
            crossAttentionLayers = slots
        }

        /// Text keys/values of every cross-attention layer, computed once per clip.
        public func conditioning(encoderHiddenStates e: Tensor) throws -> VidrdRuntime.UNet3DConditionModel.TextConditioning {
            guard e.rank == 3, e.shape[2] == configuration.crossAttentionDim else {
                throw ModelError.invalidInput("encoder hidden states must be [batch, tokens, \(configuration.crossAttentionDim)], got \(e.shape)")
            }
            return .init(keyValues: crossAttentionLayers.map { $0.keyValues(context: e) }, batch: e.shape[0])
        }

        /// Noise prediction for `sample` `[B, C, F, H, W]`; `timesteps` one per batch entry (their
        /// `timesteps.expand(batch)`) or, beyond what their forward accepts, one per (entry, frame).
        public func callAsFunction(_ sample: Tensor, timesteps: [Float],
                                   conditioning: VidrdRuntime.UNet3DConditionModel.TextConditioning,
                                   workspace: inout Workspace) throws -> Tensor {
            let c = configuration
            guard sample.rank == 5, sample.shape[1] == c.inChannels else {
                throw ModelError.invalidInput("sample must be [batch, \(c.inChannels), frames, height, width], got \(sample.shape)")
            }
            let (b, f, h, wd) = (sample.shape[0], sample.shape[2], sample.shape[3], sample.shape[4])
            guard conditioning.batch == b else {
                throw ModelError.invalidInput("text conditioning has batch \(conditioning.batch), sample has \(b)")
            }
            guard timesteps.count == b || timesteps.count == b * f else {
                throw ModelError.invalidInput("expected \(b) or \(b * f) timesteps, got \(timesteps.count)")
            }
            guard f > 0, h > 0, wd > 0 else { throw ModelError.invalidInput("empty sample \(sample.shape)") }

            let perImage: [Float] = timesteps.count == b * f ? timesteps : timesteps.flatMap { [Float](repeating: $0, count: f) }
            let tProj = sinusoidalTimestepEmbedding(perImage, dimension: c.blockOutChannels[0], flipSinToCos: c.flipSinToCos,
                                                    downscaleFreqShift: c.freqShift)
            // Every ResNet applies SiLU to the embedding first; do it once here.
            let emb = Activation.silu(timeLinear2(Activation.silu(timeLinear1(tProj))))

            var g = ClipGeometry(batch: b, frames: f, height: h, width: wd)
            var x = convIn(ClipLayout.toChannelsLast(sample), workspace: &workspace)
            var skips: [Tensor] = [x]
            for stage in down {
                for j in 0..<stage.resnets.count {
                    x = stage.layer(j, x, geometry: g, timeEmbedding: emb, conditioning: conditioning, workspace: &workspace)
                    skips.append(x)
                }
                if let conv = stage.resample {
                    x = conv(x, workspace: &workspace)
                    g.height = x.shape[1]; g.width = x.shape[2]
                    skips.append(x)
                }
            }

            x = mid.resnets[0](x, timeEmbedding: emb, normSamples: g.batch, workspace: &workspace)
            if !mid.tempConvs.isEmpty { x = mid.tempConvs[0](x, geometry: g) }
            let a = mid.attentions[0]
            x = a(x, geometry: g, context: conditioning.keyValues[a.contextSlot], workspace: &workspace)
            x = mid.resnets[1](x, timeEmbedding: emb, normSamples: g.batch, workspace: &workspace)
            if !mid.tempConvs.isEmpty { x = mid.tempConvs[1](x, geometry: g) }

            for stage in up {
                for j in 0..<stage.resnets.count {
                    let skip = skips.removeLast()
                    x = stage.layer(j, concatChannels(x, skip), geometry: g, timeEmbedding: emb, conditioning: conditioning,
                                    workspace: &workspace)
                }
                if let conv = stage.resample {
                    // Their forward_upsample_size: upsample to the next skip's size (2× unless odd).
                    let target = skips.last.map { ($0.shape[1], $0.shape[2]) } ?? (g.height * 2, g.width * 2)
                    x = upsampleNearest(x, height: target.0, width: target.1)
                    x = conv(x, workspace: &workspace)
                    g.height = x.shape[1]; g.width = x.shape[2]
                }
            }
            x = normOut(x, samples: g.batch, silu: true)  // conv_norm_out sees 5-D clips too
            x = convOut(x, workspace: &workspace)
            return ClipLayout.fromChannelsLast(x, batch: b)
        }
    }
}
