/// 2-D convolution over channels-last images `[N, H, W, Cin] -> [N, Ho, Wo, Cout]`.
///
/// Weights arrive in PyTorch order `[Cout, Cin, kh, kw]` and are re-laid once at load time to
/// `[Cout, kh, kw, Cin]`, so that an im2col row (one output pixel's receptive field, channels
/// innermost) is a plain dot product with a weight row and the whole layer is one large GEMM
/// whose output is already channels-last.
public struct Conv2d: Sendable {
    public let inChannels: Int
    public let outChannels: Int
    public let kernel: Int
    public let stride: Int
    /// Zero padding (top, left, bottom, right); diffusers' VAE encoder pads only bottom/right.
    public let padding: (top: Int, left: Int, bottom: Int, right: Int)
    let bias: [Float]
    /// How the layer computes; each keeps the one copy of the weights it needs.
    let method: Method

    enum Method: Sendable {
        /// Stride-1, pad-1 3×3 layers wide enough for the transforms to pay.
        case winograd(WinogradConv3x3)
        /// im2col (or a 1×1 layer directly) and one GEMM with `[Cout, kernel, kernel, Cin]`.
        case gemm(WeightMatrix)
    }

    var winograd: WinogradConv3x3? {
        if case .winograd(let w) = method { return w }
        return nil
    }

    public init(torchWeight: [Float], bias: [Float]?, inChannels: Int, outChannels: Int,
                kernel: Int, stride: Int = 1, padding: Int? = nil,
                asymmetricPadding: (top: Int, left: Int, bottom: Int, right: Int)? = nil,
                precision: ComputePrecision = .fp32) {
        self.init(torchWeight: .floats(torchWeight), bias: bias, inChannels: inChannels, outChannels: outChannels,
                  kernel: kernel, stride: stride, padding: padding, asymmetricPadding: asymmetricPadding, precision: precision)
    }

    init(torchWeight: WeightValues, bias: [Float]?, inChannels: Int, outChannels: Int,
         kernel: Int, stride: Int = 1, padding: Int? = nil,
         asymmetricPadding: (top: Int, left: Int, bottom: Int, right: Int)? = nil,
         precision: ComputePrecision = .fp32, kernels: ComputeKernels = .active) {
        precondition(torchWeight.count == outChannels * inChannels * kernel * kernel)
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.kernel = kernel
        self.stride = stride
        let p = padding ?? (kernel - 1) / 2
        self.padding = asymmetricPadding ?? (p, p, p, p)
        let kk = kernel * kernel
        let w = torchWeight.swappingLastTwoAxes(outChannels, inChannels, kk)
        self.bias = bias ?? [Float](repeating: 0, count: outChannels)
        let samePadding = self.padding == (1, 1, 1, 1)
        if kernel == 3 && stride == 1 && samePadding && inChannels >= 16 && outChannels >= 16 {
            method = .winograd(WinogradConv3x3(weight: w, inChannels: inChannels, outChannels: outChannels,
                                               precision: precision, kernels: kernels))
        } else {
            method = .gemm(WeightMatrix(w, outFeatures: outChannels, inFeatures: kk * inChannels, precision: precision,
                                        kernels: kernels))
        }
    }

    public func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + padding.top + padding.bottom - kernel) / stride + 1,
         (width + padding.left + padding.right - kernel) / stride + 1)
    }

    public func callAsFunction(_ x: Tensor, workspace: inout Workspace) -> Tensor {
        precondition(x.rank == 4 && x.shape[3] == inChannels, "Conv2d expects [N,H,W,\(inChannels)], got \(x.shape)")
        let (n, h, w) = (x.shape[0], x.shape[1], x.shape[2])
        let (ho, wo) = outputSize(height: h, width: w)
        var out = Tensor.uninitializedScalars(n * ho * wo * outChannels)
        x.scalars.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                forward(src.baseAddress!, n: n, h: h, w: w, into: dst.baseAddress!, workspace: &workspace)
            }
        }
        return Tensor(shape: [n, ho, wo, outChannels], scalars: out)
    }

    func forward(_ src: UnsafePointer<Float>, n: Int, h: Int, w: Int,
                 into dst: UnsafeMutablePointer<Float>, workspace: inout Workspace) {
        let weight: WeightMatrix
        switch method {
        case .gemm(let matrix):
            weight = matrix
        case .winograd(let winograd):
            // Bound the transformed buffers (16 × tiles × channels) by converting a few images at a time.
            let tilesPerImage = ((h + 1) / 2) * ((w + 1) / 2)
            let imagesPerChunk = Swift.max(1, 1024 / tilesPerImage)
            var first = 0
            while first < n {
                let count = Swift.min(imagesPerChunk, n - first)
                winograd.forward(src + first * h * w * inChannels, n: count, h: h, w: w, bias: bias,
                                 into: dst + first * h * w * outChannels, workspace: &workspace)
                first += count
            }
            return
        }
        let (ho, wo) = outputSize(height: h, width: w)
        let rowsTotal = n * ho * wo
        // Start every output row at the bias; the GEMMs accumulate into it.
        bias.withUnsafeBufferPointer { b in
            parallelChunks(rowsTotal, minimumChunk: 256) { range in
                for r in range { (dst + r * outChannels).update(from: b.baseAddress!, count: outChannels) }
            }
        }
        if kernel == 1 && stride == 1 && padding == (0, 0, 0, 0) {
            weight.multiply(rows: rowsTotal, a: src, lda: inChannels, accumulate: true, c: dst, ldc: outChannels)
            return
        }
        let kdim = kernel * kernel * inChannels
        // Bound the im2col buffer (~16 MB) by converting a band of output rows at a time.
        let budget = 4 << 20
        let rowsPerChunk = Swift.max(wo, Swift.min(rowsTotal, budget / kdim))
        _ = workspace.im2colBuffer(minimumCount: rowsPerChunk * kdim)
        let (kernel, stride, cin) = (self.kernel, self.stride, self.inChannels)
        let (pt, pl) = (padding.top, padding.left)
        workspace.im2col.withUnsafeMutableBufferPointer { colBuffer in
            let col = colBuffer.baseAddress!
            var rowStart = 0
            while rowStart < rowsTotal {
                let rows = Swift.min(rowsPerChunk, rowsTotal - rowStart)
                parallelChunks(rows, minimumChunk: 64) { range in
                    for local in range {
                        let r = rowStart + local
                        let img = r / (ho * wo)
                        let oy = (r / wo) % ho
                        let ox = r % wo
                        var dstRow = col + local * kdim
                        for ky in 0..<kernel {
                            let iy = oy * stride + ky - pt
                            for kx in 0..<kernel {
                                let ix = ox * stride + kx - pl
                                if iy >= 0 && iy < h && ix >= 0 && ix < w {
                                    dstRow.update(from: src + ((img * h + iy) * w + ix) * cin, count: cin)
                                } else {
                                    dstRow.update(repeating: 0, count: cin)
                                }
                                dstRow += cin
                            }
                        }
                    }
                }
                weight.multiply(rows: rows, a: col, lda: kdim, accumulate: true,
                                c: dst + rowStart * outChannels, ldc: outChannels)
                rowStart += rows
            }
        }
    }
}

/// The (3,1,1) temporal convolution of ModelScope's Temp-Conv: a 1-D convolution over frames with
/// zero padding of one frame at each end, applied independently at every pixel.
///
/// On channels-last clips `[B, F, H*W, C]` each kernel tap is one GEMM over a contiguous band of
/// frames, so no im2col or transposition is needed.
public struct TemporalConv: Sendable {
    public let channels: Int
    public let outChannels: Int
    let taps: [WeightMatrix]  // three [Cout, Cin] matrices, tap d reads frame f + d - 1
    let bias: [Float]

    public init(torchWeight: [Float], bias: [Float]?, inChannels: Int, outChannels: Int,
                precision: ComputePrecision = .fp32) {
        self.init(torchWeight: .floats(torchWeight), bias: bias, inChannels: inChannels, outChannels: outChannels,
                  precision: precision)
    }

    init(torchWeight: WeightValues, bias: [Float]?, inChannels: Int, outChannels: Int,
         precision: ComputePrecision = .fp32, kernels: ComputeKernels = .active) {
        precondition(torchWeight.count == outChannels * inChannels * 3)
        self.taps = (0..<3).map { d in
            WeightMatrix(torchWeight.selectingLast(d, of: 3), outFeatures: outChannels, inFeatures: inChannels,
                         precision: precision, kernels: kernels)
        }
        self.bias = bias ?? [Float](repeating: 0, count: outChannels)
        self.channels = inChannels
        self.outChannels = outChannels
    }

    /// `dst` receives `conv(src)`.
    func forward(_ src: UnsafePointer<Float>, batch: Int, frames: Int, pixels: Int,
                 into dst: UnsafeMutablePointer<Float>) {
        let frameRows = pixels
        let total = batch * frames * frameRows
        bias.withUnsafeBufferPointer { b in
            parallelChunks(total, minimumChunk: 256) { range in
                for r in range { (dst + r * outChannels).update(from: b.baseAddress!, count: outChannels) }
            }
        }
        for b in 0..<batch {
            let clipIn = src + b * frames * frameRows * channels
            let clipOut = dst + b * frames * frameRows * outChannels
            for d in 0..<3 {
                // Output frames f whose input frame f + d - 1 exists.
                let first = Swift.max(0, 1 - d)
                let last = Swift.min(frames - 1, frames - d)
                guard last >= first else { continue }
                let rows = (last - first + 1) * frameRows
                taps[d].multiply(rows: rows, a: clipIn + (first + d - 1) * frameRows * channels, lda: channels,
                                 accumulate: true, c: clipOut + first * frameRows * outChannels, ldc: outChannels)
            }
        }
    }
}
