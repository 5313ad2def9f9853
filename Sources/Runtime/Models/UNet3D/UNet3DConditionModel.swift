import Foundation

/// diffusers `UNet3DConditionModel` (ModelScope text-to-video U-Net): 2-D ResNets with
/// Temp-Conv, spatial self/cross attention with Temp-Attn, a temporal transformer after `conv_in`.
public struct UNet3DConditionModel: Sendable {
    public let configuration: UNet3DConfiguration

    struct Stage: Sendable {
        var resnets: [ResnetBlock2D]
        var tempConvs: [TemporalConvStack]
        var attentions: [SpatialTransformer]       // empty for plain blocks
        var tempAttentions: [TemporalTransformer]  // empty for plain blocks
        var resample: Conv2d?                      // down: stride-2 conv; up: conv after nearest ×2

        var crossAttends: Bool { !attentions.isEmpty }

        /// ResNet and Temp-Conv of layer `j` (the part that does not read the text).
        func convolutions(_ j: Int, _ x: Tensor, geometry g: ClipGeometry, timeEmbedding: Tensor,
                          workspace ws: inout Workspace) -> Tensor {
            tempConvs[j](resnets[j](x, timeEmbedding: timeEmbedding, workspace: &ws), geometry: g)
        }

        /// Spatial (text) and temporal attention of layer `j`.
        func attention(_ j: Int, _ x: Tensor, geometry g: ClipGeometry, conditioning: TextConditioning,
                       workspace ws: inout Workspace) -> Tensor {
            let a = attentions[j]
            let h = a(x, geometry: g, context: conditioning.keyValues[a.contextSlot], workspace: &ws)
            return tempAttentions[j](h, geometry: g, workspace: &ws)
        }
    }

    let convIn: Conv2d
    let timeLinear1: Linear
    let timeLinear2: Linear
    let transformerIn: TemporalTransformer
    let down: [Stage]
    let mid: Stage
    let up: [Stage]
    let normOut: GroupNorm
    let convOut: Conv2d
    /// Every cross-attention layer in execution order; `TextConditioning` holds one K/V per slot.
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
        let headDim = c.attentionHeadDim[0]
        var slots: [AttentionLayer] = []

        convIn = try w.conv2d("conv_in", in: c.inChannels, out: ch[0], kernel: 3)
        timeLinear1 = try w.linear("time_embedding.linear_1", in: ch[0], out: temb)
        timeLinear2 = try w.linear("time_embedding.linear_2", in: temb, out: temb)
        transformerIn = try TemporalTransformer(w, "transformer_in", channels: ch[0], heads: 8, headDim: headDim, groups: groups)

        func crossAttn(_ prefix: String, channels: Int) throws -> SpatialTransformer {
            let t = try SpatialTransformer(w, prefix, channels: channels, heads: channels / headDim, headDim: headDim,
                                           contextDim: c.crossAttentionDim, groups: groups, contextSlot: slots.count)
            slots.append(t.crossAttention)
            return t
        }
        func tempAttn(_ prefix: String, channels: Int) throws -> TemporalTransformer {
            try TemporalTransformer(w, prefix, channels: channels, heads: channels / headDim, headDim: headDim, groups: groups)
        }

        // One layer of a 3-D block: ResNet → Temp-Conv (→ spatial transformer → temporal transformer).
        func addLayer(to s: inout Stage, _ p: String, _ j: Int, in inC: Int, out outC: Int, crossAttention: Bool) throws {
            s.resnets.append(try ResnetBlock2D(w, "\(p).resnets.\(j)", in: inC, out: outC,
                                               timeChannels: temb, groups: groups, eps: eps))
            s.tempConvs.append(try .unet(w, "\(p).temp_convs.\(j)", channels: outC, groups: groups))
            if crossAttention {
                s.attentions.append(try crossAttn("\(p).attentions.\(j)", channels: outC))
                s.tempAttentions.append(try tempAttn("\(p).temp_attentions.\(j)", channels: outC))
            }
        }

        var down: [Stage] = []
        var outC = ch[0]
        for (i, type) in c.downBlockTypes.enumerated() {
            let inC = outC
            outC = ch[i]
            var s = Stage(resnets: [], tempConvs: [], attentions: [], tempAttentions: [], resample: nil)
            for j in 0..<c.layersPerBlock {
                try addLayer(to: &s, "down_blocks.\(i)", j, in: j == 0 ? inC : outC, out: outC,
                             crossAttention: type == .crossAttention)
            }
            if i < ch.count - 1 {
                s.resample = try w.conv2d("down_blocks.\(i).downsamplers.0.conv", in: outC, out: outC, kernel: 3, stride: 2, padding: 1)
            }
            down.append(s)
        }
        self.down = down

        let midC = ch[ch.count - 1]
        var mid = Stage(resnets: [], tempConvs: [], attentions: [], tempAttentions: [], resample: nil)
        for j in 0..<2 {
            mid.resnets.append(try ResnetBlock2D(w, "mid_block.resnets.\(j)", in: midC, out: midC, timeChannels: temb, groups: groups, eps: eps))
            mid.tempConvs.append(try .unet(w, "mid_block.temp_convs.\(j)", channels: midC, groups: groups))
        }
        mid.attentions.append(try crossAttn("mid_block.attentions.0", channels: midC))
        mid.tempAttentions.append(try tempAttn("mid_block.temp_attentions.0", channels: midC))
        self.mid = mid

        var up: [Stage] = []
        let reversed = Array(ch.reversed())
        outC = reversed[0]
        for (i, type) in c.upBlockTypes.enumerated() {
            let prevC = outC
            outC = reversed[i]
            let inC = reversed[Swift.min(i + 1, ch.count - 1)]
            let layers = c.layersPerBlock + 1
            var s = Stage(resnets: [], tempConvs: [], attentions: [], tempAttentions: [], resample: nil)
            let p = "up_blocks.\(i)"
            for j in 0..<layers {
                let skipC = j == layers - 1 ? inC : outC
                let resIn = j == 0 ? prevC : outC
                try addLayer(to: &s, p, j, in: resIn + skipC, out: outC, crossAttention: type == .crossAttention)
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

    /// Text keys/values of every cross-attention layer, computed once per clip: the prompt does not
    /// change across denoising steps, so this work leaves the step loop entirely.
    public struct TextConditioning: Sendable {
        let keyValues: [AttentionLayer.KeyValues]
        public let batch: Int

        /// Several conditionings as one, entries in order, for one U-Net call over the entries of
        /// several sessions (continuous batching). All must come from the same model and prompt length.
        public static func concatenating(_ parts: [TextConditioning]) throws -> TextConditioning {
            guard let first = parts.first else { throw ModelError.invalidInput("no text conditionings to concatenate") }
            if parts.count == 1 { return first }
            var layers: [AttentionLayer.KeyValues] = []
            for (l, kv) in first.keyValues.enumerated() {
                var keys = kv.keys, values = kv.values, sequences = kv.sequences
                for p in parts.dropFirst() {
                    guard p.keyValues.count == first.keyValues.count, p.keyValues[l].length == kv.length,
                          p.keyValues[l].keys.count / Swift.max(p.keyValues[l].sequences, 1) == kv.keys.count / Swift.max(kv.sequences, 1)
                    else {
                        throw ModelError.invalidInput("text conditionings of different models or prompt lengths cannot share a U-Net call")
                    }
                    keys += p.keyValues[l].keys
                    values += p.keyValues[l].values
                    sequences += p.keyValues[l].sequences
                }
                layers.append(AttentionLayer.KeyValues(keys: keys, values: values, sequences: sequences, length: kv.length))
            }
            return TextConditioning(keyValues: layers, batch: parts.reduce(0) { $0 + $1.batch })
        }
    }

    /// `encoderHiddenStates`: `[B, tokens, cross_attention_dim]`.
    public func conditioning(encoderHiddenStates e: Tensor) throws -> TextConditioning {
        guard e.rank == 3, e.shape[2] == configuration.crossAttentionDim else {
            throw ModelError.invalidInput("encoder hidden states must be [batch, tokens, \(configuration.crossAttentionDim)], got \(e.shape)")
        }
        return TextConditioning(keyValues: crossAttentionLayers.map { $0.keyValues(context: e) }, batch: e.shape[0])
    }

    /// Noise prediction for `sample` `[B, C, F, H, W]`.
    ///
    /// `timesteps` holds either one value per batch entry or one per (entry, frame) in entry-major
    /// order: entries of a batch may sit at different steps (batched sessions), and frames of one
    /// clip may too (per-frame schedules such as FIFO-Diffusion).
    ///
    /// `preemption`, when given, is called between the network's layers with the share of layers
    /// done (0 < done < 1): a scheduler may run other work there (on its own workspace), so one
    /// long forward does not hold the machine. It must not touch this call's data.
    public func callAsFunction(_ sample: Tensor, timesteps: [Float], conditioning: TextConditioning,
                               workspace: inout Workspace, preemption: ((Double) -> Void)? = nil) throws -> Tensor {
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

        // Time embedding per image (entry-major, frame-minor), then SiLU once for all ResNets.
        let perImage: [Float] = timesteps.count == b * f ? timesteps : timesteps.flatMap { [Float](repeating: $0, count: f) }
        let tProj = sinusoidalTimestepEmbedding(perImage, dimension: c.blockOutChannels[0], flipSinToCos: true, downscaleFreqShift: 0)
        var emb = timeLinear2(Activation.silu(timeLinear1(tProj)))
        emb = Activation.silu(emb)

        // Classifier-free guidance feeds the same latents and timesteps twice; only the text
        // differs. Everything before the first cross-attention is then identical within each run of
        // equal entries (one run per session when several sessions share the call), so it runs once
        // per run and is copied when the entries' conditioning first matters.
        let runs = b > 1 ? Self.identicalRuns(sample, perImageTimesteps: perImage, batch: b) : [1]
        let shared = runs.count < b
        let representatives = shared ? Self.runStarts(runs) : []
        var g = ClipGeometry(batch: shared ? runs.count : b, frames: f, height: h, width: wd)
        var x = ClipLayout.toChannelsLast(shared ? Self.gatherEntries(sample, entries: b, picking: representatives) : sample)
        var stepEmbedding = shared ? Self.gatherEntries(emb, entries: b, picking: representatives) : emb
        x = convIn(x, workspace: &workspace)
        x = transformerIn(x, geometry: g, workspace: &workspace)

        let points = (down + [mid] + up).reduce(0) { $0 + $1.resnets.count }
        var passed = 0
        func preemptionPoint() {
            guard let preemption else { return }
            passed += 1
            if passed < points { preemption(Double(passed) / Double(points)) }
        }

        var skips: [Tensor] = [x]
        func expandToFullBatch() {
            guard g.batch < b else { return }
            let expansion = Self.runExpansion(runs)
            x = Self.gatherEntries(x, entries: g.batch, picking: expansion)
            skips = skips.map { Self.gatherEntries($0, entries: runs.count, picking: expansion) }
            stepEmbedding = emb
            g.batch = b
        }
        for stage in down {
            for j in 0..<stage.resnets.count {
                x = stage.convolutions(j, x, geometry: g, timeEmbedding: stepEmbedding, workspace: &workspace)
                if stage.crossAttends {
                    expandToFullBatch()
                    x = stage.attention(j, x, geometry: g, conditioning: conditioning, workspace: &workspace)
                }
                skips.append(x)
                preemptionPoint()
            }
            if let conv = stage.resample {
                x = conv(x, workspace: &workspace)
                g.height = x.shape[1]; g.width = x.shape[2]
                skips.append(x)
            }
        }
        expandToFullBatch()

        x = mid.convolutions(0, x, geometry: g, timeEmbedding: emb, workspace: &workspace)
        x = mid.attention(0, x, geometry: g, conditioning: conditioning, workspace: &workspace)
        x = mid.convolutions(1, x, geometry: g, timeEmbedding: emb, workspace: &workspace)
        preemptionPoint()
        preemptionPoint()

        for stage in up {
            for j in 0..<stage.resnets.count {
                let skip = skips.removeLast()
                x = stage.convolutions(j, concatChannels(x, skip), geometry: g, timeEmbedding: emb, workspace: &workspace)
                if stage.crossAttends {
                    x = stage.attention(j, x, geometry: g, conditioning: conditioning, workspace: &workspace)
                }
                preemptionPoint()
            }
            if let conv = stage.resample {
                // Upsample to the size of the next skip (diffusers' forward_upsample_size), which
                // is exactly 2× unless an odd size was rounded on the way down.
                let target = skips.last.map { ($0.shape[1], $0.shape[2]) } ?? (g.height * 2, g.width * 2)
                x = upsampleNearest(x, height: target.0, width: target.1)
                x = conv(x, workspace: &workspace)
                g.height = x.shape[1]; g.width = x.shape[2]
            }
        }
        x = normOut(x, samples: g.images, silu: true)
        x = convOut(x, workspace: &workspace)
        return ClipLayout.fromChannelsLast(x, batch: b)
    }

    /// Lengths of the runs of consecutive identical entries (same latents, same timesteps), in order.
    static func identicalRuns(_ sample: Tensor, perImageTimesteps t: [Float], batch: Int) -> [Int] {
        let per = sample.count / batch, frames = t.count / batch
        var runs = [1]
        sample.scalars.withUnsafeBufferPointer { s in
            for e in 1..<batch {
                let sameTime = t[(e * frames)..<((e + 1) * frames)] == t[((e - 1) * frames)..<(e * frames)]
                let sameLatents = sameTime && memcmp(s.baseAddress! + e * per, s.baseAddress! + (e - 1) * per, per * MemoryLayout<Float>.size) == 0
                if sameLatents { runs[runs.count - 1] += 1 } else { runs.append(1) }
            }
        }
        return runs
    }

    /// The first entry of every run.
    static func runStarts(_ runs: [Int]) -> [Int] {
        var starts: [Int] = [], at = 0
        for r in runs { starts.append(at); at += r }
        return starts
    }

    /// For each entry of the full batch, the run it belongs to.
    static func runExpansion(_ runs: [Int]) -> [Int] {
        runs.enumerated().flatMap { [Int](repeating: $0.offset, count: $0.element) }
    }

    /// `t` holds `entries` equal-sized entries along its first dimension; returns the entries
    /// `picking` names, in that order (repeats allowed).
    static func gatherEntries(_ t: Tensor, entries: Int, picking: [Int]) -> Tensor {
        let per = t.count / entries
        var scalars = [Float](repeating: 0, count: per * picking.count)
        t.scalars.withUnsafeBufferPointer { src in
            scalars.withUnsafeMutableBufferPointer { dst in
                for (k, e) in picking.enumerated() {
                    (dst.baseAddress! + k * per).update(from: src.baseAddress! + e * per, count: per)
                }
            }
        }
        return Tensor(shape: [t.shape[0] / entries * picking.count] + Array(t.shape.dropFirst()), scalars: scalars)
    }

}
