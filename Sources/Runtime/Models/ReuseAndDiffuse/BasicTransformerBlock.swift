#if canImport(Glibc)
import Glibc
#endif
import Foundation

extension ReuseAndDiffuse {
    /// The authors' `BasicTransformerBlock` (`model/modules/attention.py`): spatial
    /// self-attention, cross-attention, then — unlike diffusers, inside the same block — an
    /// optional temporal attention (`temp_norm`, `temp_attn`) across the frames of each token,
    /// preceded by a sinusoidal frame-position embedding; then the GEGLU feed-forward.
    struct BasicTransformerBlock: Sendable {
        struct TemporalAttention: Sendable {
            let norm: LayerNorm
            let attention: AttentionLayer
        }

        let norm1: LayerNorm
        let attn1: AttentionLayer
        let norm2: LayerNorm
        let attn2: AttentionLayer
        let temporal: TemporalAttention?
        let addTempEmbed: Bool
        let norm3: LayerNorm
        let ff: GEGLUFeedForward

        init(_ w: WeightLoader, _ prefix: String, dim: Int, heads: Int, headDim: Int, contextDim: Int,
             addTempAttn: Bool, addTempEmbed: Bool) throws {
            norm1 = try w.layerNorm("\(prefix).norm1", features: dim, eps: 1e-5)
            attn1 = try loadAttention(w, "\(prefix).attn1", queryDim: dim, heads: heads, headDim: headDim)
            norm2 = try w.layerNorm("\(prefix).norm2", features: dim, eps: 1e-5)
            attn2 = try loadAttention(w, "\(prefix).attn2", queryDim: dim, contextDim: contextDim, heads: heads, headDim: headDim)
            temporal = addTempAttn
                ? TemporalAttention(norm: try w.layerNorm("\(prefix).temp_norm", features: dim, eps: 1e-5),
                                    attention: try loadAttention(w, "\(prefix).temp_attn", queryDim: dim, heads: heads, headDim: headDim))
                : nil
            // Their embedding is added only on the temporal path, so without Temp-Attn it has no effect.
            self.addTempEmbed = addTempAttn && addTempEmbed
            norm3 = try w.layerNorm("\(prefix).norm3", features: dim, eps: 1e-5)
            ff = try GEGLUFeedForward(w, "\(prefix).ff", dim: dim)
        }

        /// In place on `x` = `[B*F*H*W, dim]` (image-major rows, as `Transformer3DModel` lays them out).
        func callAsFunction(_ x: inout Tensor, geometry g: ClipGeometry, context: AttentionLayer.KeyValues,
                            workspace ws: inout Workspace) {
            let features = norm1.features
            let rows = x.count / features
            let np = ws.scratch(.normalized, count: rows * features)
            let op = ws.scratch(.residualBranch, count: rows * features)
            let positions = addTempEmbed ? Self.framePositionEmbedding(dim: features, frames: g.frames) : []
            x.scalars.withUnsafeMutableBufferPointer { xb in
                let xp = xb.baseAddress!
                norm1.forward(xp, rows: rows, into: np)
                attn1.selfAttention(np, rows: rows, sequences: g.images, length: g.pixels,
                                    layout: .contiguous(length: g.pixels), into: op, workspace: &ws)
                addInPlace(xp, op, count: rows * features)

                norm2.forward(xp, rows: rows, into: np)
                attn2.crossAttention(np, rows: rows, sequences: g.images, length: g.pixels,
                                     context: context, framesPerContext: g.frames, into: op, workspace: &ws)
                addInPlace(xp, op, count: rows * features)

                if let temporal {
                    // The embedding joins the residual stream, not only the attention input: their
                    // `hidden_states += temp_emb` precedes the residual sum. With one frame they keep
                    // `identity`, which that in-place add has already changed, so the embedding of
                    // frame 0 stays while the attention itself is skipped.
                    if addTempEmbed { Self.addPerFrame(positions, to: xp, images: g.images, frames: g.frames, pixels: g.pixels) }
                    if g.frames > 1 {
                        temporal.norm.forward(xp, rows: rows, into: np)
                        // Sequence (b, p) holds rows (b*F + f)*P + p: tokens P rows apart, read in place.
                        let layout = SequenceLayout(groupSize: g.pixels, groupStride: g.frames * g.pixels, memberStride: 1,
                                                    tokenStride: g.pixels)
                        temporal.attention.selfAttention(np, rows: rows, sequences: g.batch * g.pixels, length: g.frames,
                                                         layout: layout, into: op, workspace: &ws)
                        addInPlace(xp, op, count: rows * features)
                    }
                }

                norm3.forward(xp, rows: rows, into: np)
                ff.apply(np, rows: rows, addingTo: xp, workspace: &ws)
            }
        }

        /// Their `get_sin_pos_embedding(dim, frames)`: row f holds sin(f·ω_i) at even and cos(f·ω_i)
        /// at odd columns, ω_i = exp(2i · −ln(10⁴)/dim), in fp32 as they compute it.
        static func framePositionEmbedding(dim: Int, frames: Int) -> [Float] {
            let k = Float(-(log(10000.0) / Double(dim)))
            var pe = [Float](repeating: 0, count: frames * dim)
            for i in stride(from: 0, to: dim, by: 2) {
                let omega = expf(Float(i) * k)
                for f in 0..<frames {
                    let arg = Float(f) * omega
                    pe[f * dim + i] = sinf(arg)
                    pe[f * dim + i + 1] = cosf(arg)
                }
            }
            return pe
        }

        static func addPerFrame(_ pe: [Float], to x: UnsafeMutablePointer<Float>, images: Int, frames: Int, pixels: Int) {
            let dim = pe.count / frames
            pe.withUnsafeBufferPointer { pb in
                let pp = pb.baseAddress!
                parallelChunks(images) { r in
                    for n in r {
                        let e = pp + (n % frames) * dim
                        for p in 0..<pixels {
                            let row = x + (n * pixels + p) * dim
                            for j in 0..<dim { row[j] += e[j] }
                        }
                    }
                }
            }
        }
    }

    /// The authors' `Transformer3DModel`: per-frame GroupNorm → `proj_in` (linear with SD-2's
    /// `use_linear_projection`, else 1×1 conv) → one `BasicTransformerBlock` → `proj_out` → + input.
    struct Transformer3DModel: Sendable {
        let norm: GroupNorm
        let projIn: Linear
        let block: BasicTransformerBlock
        let projOut: Linear
        /// Index of this layer's text keys/values in a `TextConditioning`.
        let contextSlot: Int

        init(_ w: WeightLoader, _ prefix: String, channels: Int, heads: Int, contextDim: Int, groups: Int,
             addTempAttn: Bool, addTempEmbed: Bool, contextSlot: Int) throws {
            norm = try w.groupNorm("\(prefix).norm", groups: groups, channels: channels, eps: 1e-6)
            projIn = try w.pointwise("\(prefix).proj_in", in: channels, out: channels)
            block = try BasicTransformerBlock(w, "\(prefix).transformer_blocks.0", dim: channels, heads: heads,
                                              headDim: channels / heads, contextDim: contextDim,
                                              addTempAttn: addTempAttn, addTempEmbed: addTempEmbed)
            projOut = try w.pointwise("\(prefix).proj_out", in: channels, out: channels)
            self.contextSlot = contextSlot
        }

        var crossAttention: AttentionLayer { block.attn2 }

        func callAsFunction(_ x: Tensor, geometry g: ClipGeometry, context: AttentionLayer.KeyValues,
                            workspace ws: inout Workspace) -> Tensor {
            var h = projIn(norm(x, samples: g.images))
            block(&h, geometry: g, context: context, workspace: &ws)
            var out = projOut(h)
            out.add(x)
            return out
        }
    }
}
