import CVidrdKernels

/// diffusers `Attention` weights under `prefix` (`to_q`, `to_k`, `to_v`, `to_out.0`).
func loadAttention(_ w: WeightLoader, _ prefix: String, queryDim: Int, contextDim: Int? = nil,
                   heads: Int, headDim: Int) throws -> AttentionLayer {
    let inner = heads * headDim
    let kvDim = contextDim ?? queryDim
    return AttentionLayer(
        heads: heads, headDim: headDim,
        toQ: try w.linearOptionalBias("\(prefix).to_q", in: queryDim, out: inner),
        toK: try w.linearOptionalBias("\(prefix).to_k", in: kvDim, out: inner),
        toV: try w.linearOptionalBias("\(prefix).to_v", in: kvDim, out: inner),
        toOut: try w.linear("\(prefix).to_out.0", in: inner, out: queryDim))
}

/// GEGLU feed-forward (`ff.net.0.proj` → value * GELU(gate), `ff.net.2`).
struct GEGLUFeedForward: Sendable {
    let proj: Linear
    let out: Linear

    init(_ w: WeightLoader, _ prefix: String, dim: Int, multiplier: Int = 4) throws {
        let inner = dim * multiplier
        proj = try w.linear("\(prefix).net.0.proj", in: dim, out: inner * 2)
        out = try w.linear("\(prefix).net.2", in: inner, out: dim)
    }

    /// Adds `ff(x)` to `residual` (both `[rows, dim]`).
    func apply(_ x: UnsafePointer<Float>, rows: Int, addingTo residual: UnsafeMutablePointer<Float>,
               workspace ws: inout Workspace) {
        let inner = out.inFeatures
        let hp = ws.scratch(.feedForward, count: rows * inner * 2)
        do {
            proj.apply(rows: rows, input: x, output: hp)
            // Gate in place: row r's first half becomes value * gelu(gate); the GEMM below reads it
            // with a row stride of 2*inner, so no compaction copy is needed.
            let isa = ComputeKernels.active.elementwiseISA
            parallelChunks(rows, minimumChunk: 16) { r in
                for i in r { vidrd_gelu_gate(isa, hp + i * inner * 2, inner) }
            }
            out.apply(rows: rows, input: hp, inputStride: inner * 2, output: residual, accumulate: true)
        }
    }
}

/// diffusers `BasicTransformerBlock` with layer norms: self-attention, then cross-attention
/// (or a second self-attention for temporal blocks), then GEGLU feed-forward; each residual.
struct BasicTransformerBlock: Sendable {
    let norm1: LayerNorm
    let attn1: AttentionLayer
    let norm2: LayerNorm
    let attn2: AttentionLayer
    let norm3: LayerNorm
    let ff: GEGLUFeedForward
    let crossAttends: Bool

    init(_ w: WeightLoader, _ prefix: String, dim: Int, heads: Int, headDim: Int, contextDim: Int?, eps: Float = 1e-5) throws {
        norm1 = try w.layerNorm("\(prefix).norm1", features: dim, eps: eps)
        attn1 = try loadAttention(w, "\(prefix).attn1", queryDim: dim, heads: heads, headDim: headDim)
        norm2 = try w.layerNorm("\(prefix).norm2", features: dim, eps: eps)
        attn2 = try loadAttention(w, "\(prefix).attn2", queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim)
        norm3 = try w.layerNorm("\(prefix).norm3", features: dim, eps: eps)
        ff = try GEGLUFeedForward(w, "\(prefix).ff", dim: dim)
        crossAttends = contextDim != nil
    }

    /// Runs in place on `x` (`[rows, dim]`), sequences described by `layout`.
    func callAsFunction(_ x: inout Tensor, sequences: Int, length: Int, layout: SequenceLayout,
                        context: AttentionLayer.KeyValues?, framesPerContext: Int, workspace ws: inout Workspace) {
        let features = norm1.features
        let rows = x.count / features
        let np = ws.scratch(.normalized, count: rows * features)
        let op = ws.scratch(.residualBranch, count: rows * features)
        x.scalars.withUnsafeMutableBufferPointer { xb in
            let xp = xb.baseAddress!
            norm1.forward(xp, rows: rows, into: np)
            attn1.selfAttention(np, rows: rows, sequences: sequences, length: length, layout: layout, into: op, workspace: &ws)
            addInPlace(xp, op, count: rows * features)

            norm2.forward(xp, rows: rows, into: np)
            if crossAttends, let context {
                attn2.crossAttention(np, rows: rows, sequences: sequences, length: length,
                                     context: context, framesPerContext: framesPerContext, into: op, workspace: &ws)
            } else {
                attn2.selfAttention(np, rows: rows, sequences: sequences, length: length, layout: layout, into: op, workspace: &ws)
            }
            addInPlace(xp, op, count: rows * features)

            norm3.forward(xp, rows: rows, into: np)
            ff.apply(np, rows: rows, addingTo: xp, workspace: &ws)
        }
    }
}

@inline(__always)
func addInPlace(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, count: Int) {
    parallelChunks(count, minimumChunk: 32768) { r in for i in r { dst[i] += src[i] } }
}

/// diffusers `Transformer2DModel` (continuous input): GroupNorm → proj_in → blocks → proj_out → + input.
/// Attention runs within each image; cross-attention reads the text of the image's batch entry.
struct SpatialTransformer: Sendable {
    let norm: GroupNorm
    let projIn: Linear
    let blocks: [BasicTransformerBlock]
    let projOut: Linear
    /// Index of this layer's precomputed text keys/values in a `TextConditioning`.
    let contextSlot: Int

    init(_ w: WeightLoader, _ prefix: String, channels: Int, heads: Int, headDim: Int, contextDim: Int,
         groups: Int, contextSlot: Int) throws {
        let inner = heads * headDim
        norm = try w.groupNorm("\(prefix).norm", groups: groups, channels: channels, eps: 1e-6)
        projIn = try w.pointwise("\(prefix).proj_in", in: channels, out: inner)
        blocks = [try BasicTransformerBlock(w, "\(prefix).transformer_blocks.0", dim: inner, heads: heads,
                                            headDim: headDim, contextDim: contextDim)]
        projOut = try w.pointwise("\(prefix).proj_out", in: inner, out: channels)
        self.contextSlot = contextSlot
    }

    var crossAttention: AttentionLayer { blocks[0].attn2 }

    func callAsFunction(_ x: Tensor, geometry g: ClipGeometry, context: AttentionLayer.KeyValues,
                        workspace ws: inout Workspace) -> Tensor {
        var h = projIn(norm(x, samples: g.images))
        for block in blocks {
            block(&h, sequences: g.images, length: g.pixels, layout: .contiguous(length: g.pixels),
                  context: context, framesPerContext: g.frames, workspace: &ws)
        }
        var out = projOut(h)
        out.add(x)
        return out
    }
}

/// diffusers `TransformerTemporalModel`: attention across the frames of each pixel.
/// The norm spans all frames of a clip; tokens of one sequence are `H*W` rows apart, which the
/// attention reads in place.
struct TemporalTransformer: Sendable {
    let norm: GroupNorm
    let projIn: Linear
    let blocks: [BasicTransformerBlock]
    let projOut: Linear

    init(_ w: WeightLoader, _ prefix: String, channels: Int, heads: Int, headDim: Int, groups: Int) throws {
        let inner = heads * headDim
        norm = try w.groupNorm("\(prefix).norm", groups: groups, channels: channels, eps: 1e-6)
        projIn = try w.linear("\(prefix).proj_in", in: channels, out: inner)
        blocks = [try BasicTransformerBlock(w, "\(prefix).transformer_blocks.0", dim: inner, heads: heads,
                                            headDim: headDim, contextDim: nil)]
        projOut = try w.linear("\(prefix).proj_out", in: inner, out: channels)
    }

    func callAsFunction(_ x: Tensor, geometry g: ClipGeometry, workspace ws: inout Workspace) -> Tensor {
        var h = projIn(norm(x, samples: g.batch))
        let layout = SequenceLayout(groupSize: g.pixels, groupStride: g.frames * g.pixels, memberStride: 1,
                                    tokenStride: g.pixels)
        for block in blocks {
            block(&h, sequences: g.batch * g.pixels, length: g.frames, layout: layout, context: nil, framesPerContext: 1,
                  workspace: &ws)
        }
        var out = projOut(h)
        out.add(x)
        return out
    }
}
