import CVidrdKernels

/// Winograd F(2×2, 3×3) for stride-1, pad-1 3×3 convolutions on channels-last images.
///
/// Each 2×2 output tile needs 16 multiplies per (input, output) channel pair instead of 36, so
/// the layer becomes 16 GEMMs `[tiles, Cin] × [Cin, Cout]` carrying 2.25× fewer FLOPs than
/// im2col's single `[pixels, 9·Cin] × [9·Cin, Cout]`. The transforms are exact in real
/// arithmetic and add only rounding of the order of fp32 epsilon.
struct WinogradConv3x3: Sendable {
    let inChannels: Int
    let outChannels: Int
    let weights: Weights

    enum Weights: Sendable {
        /// U = G g Gᵀ: 16 matrices `[Cout, Cin]`, one per position of the 4×4 tile.
        case transformed([WeightMatrix])
        /// A 16-bit checkpoint's nine taps, kept as they are; each product computes its U from
        /// them panel by panel with this transform's arithmetic (`vidrd_sgemm_winograd_half`),
        /// so the bits are `transformed`'s in 9/32 of its bytes.
        case taps(WinogradTaps)
    }

    /// `weight`: `[Cout, 3, 3, Cin]` (the runtime's conv layout).
    init(weight: WeightValues, inChannels: Int, outChannels: Int, precision: ComputePrecision = .fp32,
         kernels: ComputeKernels = .active) {
        self.inChannels = inChannels
        self.outChannels = outChannels
        if case .halves(let bits, let format) = weight, precision == .fp32,
           let taps = WinogradTaps(bits, format: format, inChannels: inChannels, outChannels: outChannels, kernels: kernels) {
            weights = .taps(taps)
            return
        }
        weights = .transformed(Self.transform(weight.widened, inChannels: inChannels, outChannels: outChannels,
                                              precision: precision, kernels: kernels))
    }

    init(weight: [Float], inChannels: Int, outChannels: Int, precision: ComputePrecision = .fp32) {
        self.init(weight: .floats(weight), inChannels: inChannels, outChannels: outChannels, precision: precision)
    }

    /// The products' order is part of the bit contract: the kernels' Winograd widening
    /// (`gemm_winograd_widen`, gemm_internal.h) repeats it.
    private static func transform(_ weight: [Float], inChannels: Int, outChannels: Int, precision: ComputePrecision,
                                  kernels: ComputeKernels) -> [WeightMatrix] {
        let g: [[Float]] = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
        var u = [Float](repeating: 0, count: 16 * outChannels * inChannels)
        for o in 0..<outChannels {
            for i in 0..<inChannels {
                var k = [[Float]](repeating: [0, 0, 0], count: 3)
                for y in 0..<3 { for x in 0..<3 { k[y][x] = weight[((o * 3 + y) * 3 + x) * inChannels + i] } }
                // t = G k (4×3), then U = t Gᵀ (4×4).
                var t = [[Float]](repeating: [0, 0, 0], count: 4)
                for a in 0..<4 { for x in 0..<3 { t[a][x] = g[a][0] * k[0][x] + g[a][1] * k[1][x] + g[a][2] * k[2][x] } }
                for a in 0..<4 {
                    for b in 0..<4 {
                        let v = t[a][0] * g[b][0] + t[a][1] * g[b][1] + t[a][2] * g[b][2]
                        u[((a * 4 + b) * outChannels + o) * inChannels + i] = v
                    }
                }
            }
        }
        let size = outChannels * inChannels
        return u.withUnsafeBufferPointer { all in
            (0..<16).map { xi in
                WeightMatrix(UnsafeBufferPointer(rebasing: all[xi * size..<(xi + 1) * size]), outFeatures: outChannels,
                             inFeatures: inChannels, precision: precision, kernels: kernels)
            }
        }
    }

    func forward(_ src: UnsafePointer<Float>, n: Int, h: Int, w: Int, bias: [Float],
                 into dst: UnsafeMutablePointer<Float>, workspace ws: inout Workspace) {
        let cin = inChannels, cout = outChannels
        let tilesH = (h + 1) / 2, tilesW = (w + 1) / 2
        let tiles = n * tilesH * tilesW
        let v = ws.scratch(.winogradInput, count: 16 * tiles * cin)
        let m = ws.scratch(.winogradOutput, count: 16 * tiles * cout)

        // Input transform V = Bᵀ d B per tile, 8 channels at a time.
        parallelChunks(tiles, minimumChunk: 8) { range in
          withUnsafeTemporaryAllocation(of: FloatV.self, capacity: 32) { tmp in
            let patch = tmp.baseAddress!, r = tmp.baseAddress! + 16
            for tile in range {
                let img = tile / (tilesH * tilesW)
                let ty = (tile / tilesW) % tilesH, tx = tile % tilesW
                var c = 0
                while c < cin {
                    let lanes = Swift.min(8, cin - c)
                    for py in 0..<4 {
                        let iy = 2 * ty - 1 + py
                        for px in 0..<4 {
                            let ix = 2 * tx - 1 + px
                            let inside = iy >= 0 && iy < h && ix >= 0 && ix < w
                            patch[py * 4 + px] = inside
                                ? load(src + ((img * h + iy) * w + ix) * cin + c, lanes) : FloatV(repeating: 0)
                        }
                    }
                    // Rows: r = Bᵀ d.
                    for x in 0..<4 {
                        let d0 = patch[x], d1 = patch[4 + x], d2 = patch[8 + x], d3 = patch[12 + x]
                        r[x] = d0 - d2
                        r[4 + x] = d1 + d2
                        r[8 + x] = d2 - d1
                        r[12 + x] = d1 - d3
                    }
                    // Columns: V = r B.
                    for y in 0..<4 {
                        let a0 = r[y * 4], a1 = r[y * 4 + 1], a2 = r[y * 4 + 2], a3 = r[y * 4 + 3]
                        store(a0 - a2, v + ((y * 4 + 0) * tiles + tile) * cin + c, lanes)
                        store(a1 + a2, v + ((y * 4 + 1) * tiles + tile) * cin + c, lanes)
                        store(a2 - a1, v + ((y * 4 + 2) * tiles + tile) * cin + c, lanes)
                        store(a1 - a3, v + ((y * 4 + 3) * tiles + tile) * cin + c, lanes)
                    }
                    c += 8
                }
            }
          }
        }
        // 16 products M[ξ] = V[ξ] · U[ξ]ᵀ.
        for xi in 0..<16 {
            switch weights {
            case .transformed(let u):
                u[xi].multiply(rows: tiles, a: v + xi * tiles * cin, lda: cin, accumulate: false,
                               c: m + xi * tiles * cout, ldc: cout)
            case .taps(let taps):
                taps.multiply(position: xi, rows: tiles, a: v + xi * tiles * cin, lda: cin, c: m + xi * tiles * cout, ldc: cout)
            }
        }
        // Output transform Y = Aᵀ M A (2×2) plus bias.
        bias.withUnsafeBufferPointer { bb in
            let biasp = bb.baseAddress!
            parallelChunks(tiles, minimumChunk: 8) { range in
              withUnsafeTemporaryAllocation(of: FloatV.self, capacity: 24) { tmp in
                let mm = tmp.baseAddress!, t = tmp.baseAddress! + 16
                for tile in range {
                    let img = tile / (tilesH * tilesW)
                    let ty = (tile / tilesW) % tilesH, tx = tile % tilesW
                    var c = 0
                    while c < cout {
                        let lanes = Swift.min(8, cout - c)
                        for xi in 0..<16 {
                            mm[xi] = load(m + (xi * tiles + tile) * cout + c, lanes)
                        }
                        // Rows: t = Aᵀ M (2×4).
                        for x in 0..<4 {
                            t[x] = mm[x] + mm[4 + x] + mm[8 + x]
                            t[4 + x] = mm[4 + x] - mm[8 + x] - mm[12 + x]
                        }
                        var bv = FloatV(repeating: 0)
                        for l in 0..<lanes { bv[l] = biasp[c + l] }
                        for y in 0..<2 {
                            let oy = 2 * ty + y
                            guard oy < h else { continue }
                            let y0 = t[y * 4] + t[y * 4 + 1] + t[y * 4 + 2] + bv
                            let y1 = t[y * 4 + 1] - t[y * 4 + 2] - t[y * 4 + 3] + bv
                            let ox = 2 * tx
                            store(y0, dst + ((img * h + oy) * w + ox) * cout + c, lanes)
                            if ox + 1 < w { store(y1, dst + ((img * h + oy) * w + ox + 1) * cout + c, lanes) }
                        }
                        c += 8
                    }
                }
              }
            }
        }
    }

    /// The first `lanes` floats at `p` (the rest zero): channel counts need not be multiples of 8.
    @inline(__always)
    private func load(_ p: UnsafePointer<Float>, _ lanes: Int) -> FloatV {
        if lanes == 8 { return UnsafeRawPointer(p).loadUnaligned(as: FloatV.self) }
        var vec = FloatV(repeating: 0)
        for l in 0..<lanes { vec[l] = p[l] }
        return vec
    }

    @inline(__always)
    private func store(_ value: FloatV, _ p: UnsafeMutablePointer<Float>, _ lanes: Int) {
        if lanes == 8 {
            UnsafeMutableRawPointer(p).storeBytes(of: value, as: FloatV.self)
        } else {
            for l in 0..<lanes { p[l] = value[l] }
        }
    }
}

/// A 3×3 convolution's nine taps (`[Cout, Cin]` each) in the checkpoint's 16-bit format, packed
/// for the active kernel, from which each Winograd product computes its transformed weight.
struct WinogradTaps: Sendable {
    let inChannels: Int
    let outChannels: Int
    private let words: AlignedWords
    private let isa: vidrd_isa
    private let format: HalfFormat

    /// `bits`: `[Cout, 3, 3, Cin]`; nil when no kernel of ours runs here or memory is short.
    init?(_ bits: [UInt16], format: HalfFormat, inChannels: Int, outChannels: Int, kernels: ComputeKernels = .active) {
        precondition(bits.count == outChannels * 9 * inChannels)
        guard let isa = kernels.kernelISA else { return nil }
        let stride = vidrd_packed_b_halves(isa, outChannels, inChannels)
        guard stride > 0, let words = AlignedWords(halves: 9 * stride) else { return nil }
        let packed = bits.withUnsafeBufferPointer { b in
            (0..<9).allSatisfy { tap in
                vidrd_pack_b_half(isa, outChannels, inChannels, b.baseAddress! + tap * inChannels, 9 * inChannels,
                                  words.halves + tap * stride) == 0
            }
        }
        guard packed else { return nil }
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.words = words
        self.isa = isa
        self.format = format
    }

    var bytes: Int { words.count * 4 }

    /// `C[rows × Cout] = A[rows × Cin] · U[position]ᵀ`, split by rows as `WeightMatrix.multiply`.
    func multiply(position: Int, rows m: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int) {
        let n = outChannels, k = inChannels
        splitRows(m: m, n: n, k: k) { r0, rows in
            let status = vidrd_sgemm_winograd_half(isa, format.kernelCode, Int32(position), rows, n, k, a + r0 * lda, lda,
                                                   words.halves, 0, c + r0 * ldc, ldc)
            precondition(status == 0, "Winograd GEMM failed (no scratch memory)")
        }
    }
}
