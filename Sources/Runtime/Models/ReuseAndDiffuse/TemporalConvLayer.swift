extension ReuseAndDiffuse {
    /// The authors' U-Net `TemporalConvLayer` (`model/modules/unet_blocks.py`): four groups of
    /// GroupNorm(32) → SiLU → Dropout → Conv3d (3,1,1) as one `convs` list (norms at 0/4/8/12,
    /// convs at 3/7/11/15), residual. Their VAE decoder uses three groups of the same list.
    struct TemporalConvLayer: Sendable {
        /// `nn.GroupNorm(32, C)` in their code, whatever the U-Net's `norm_num_groups`.
        static let groups = 32
        static let layers = 4
        let stack: TemporalConvStack

        init(_ w: WeightLoader, _ prefix: String, channels: Int) throws {
            var norms: [GroupNorm] = [], convs: [TemporalConv] = []
            for i in 0..<Self.layers {
                norms.append(try w.groupNorm("\(prefix).convs.\(4 * i)", groups: Self.groups, channels: channels, eps: 1e-5))
                convs.append(try w.temporalConv("\(prefix).convs.\(4 * i + 3)", in: channels, out: channels))
            }
            stack = TemporalConvStack(norms: norms, convs: convs)
        }

        /// `x`: `[B*F, H, W, C]`. A one-frame clip passes unchanged: their forward returns
        /// `identity + 0 * convs(x)` then, so an image never sees the zero-padded temporal taps.
        func callAsFunction(_ x: Tensor, geometry g: ClipGeometry) -> Tensor {
            g.frames > 1 ? stack(x, geometry: g) : x
        }
    }
}
