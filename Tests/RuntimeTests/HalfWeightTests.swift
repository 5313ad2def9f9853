import CVidrdKernels
import Testing

@testable import VidrdRuntime

/// Weights kept in the checkpoint's own 16-bit format (fp16 or bf16) in exact fp32 mode: half the
/// memory, and — because widening either format to fp32 is exact — bit for bit the products of
/// the widened weights, for every layer kind, including 3×3 convolutions whose Winograd weights
/// are computed from the taps inside each product. In the kernel suite's name so that `.ci/run`
/// runs them again under `VIDRD_ISA=avx512` and `generic`.
extension GEMMKernelTests {
    /// 16-bit values with every kind of edge: both signs, zeros, fp16 subnormals and the extremes
    /// (their products stay finite: these tests compare bits, not overflow behaviour).
    static func halfValues(_ count: Int, format: HalfFormat, seed: UInt32) -> [UInt16] {
        var s = seed
        return (0..<count).map { i in
            s = s &* 1_664_525 &+ 1_013_904_223
            switch i % 17 {
            case 0: return 0x8000            // -0
            case 1: return UInt16(s >> 22)   // a subnormal fp16 (a tiny bf16)
            case 2: return format == .f16 ? 0x7BFF : 0x4780  // fp16's largest finite value; bf16 65536
            default:
                let v = (Float(s >> 8) / 16_777_216 - 0.5) * (s & 1 == 0 ? 1 : 30)
                return format == .f16 ? Float16(v).bitPattern : UInt16(v.bitPattern >> 16)
            }
        }
    }

    static let halfFormats: [HalfFormat] = [.f16, .bf16]

    /// The widening the layers' "widened copy" uses, against Swift's own Float16 and bf16's
    /// definition (the upper half of an fp32); the kernels must then match its products.
    @Test func widenedValuesAreExact() {
        for format in Self.halfFormats {
            for h in Self.halfValues(4000, format: format, seed: 9) {
                let expected: Float = format == .f16 ? Float(Float16(bitPattern: h)) : Float(bitPattern: UInt32(h) << 16)
                #expect(format.widen(h).bitPattern == expected.bitPattern, "\(format) 0x\(String(h, radix: 16))")
            }
        }
    }

    @Test(arguments: kernelISAs)
    func halfWeightsGiveTheWidenedWeightsBits(isa: vidrd_isa) throws {
        for format in Self.halfFormats {
            for (m, n, k, beta) in Self.packedShapes {
                let bits = Self.halfValues(n * k, format: format, seed: UInt32(3 * n + k))
                let widened = bits.map(format.widen)
                let a = Self.values(m * k, seed: 4)
                let packedFloats = try #require(AlignedWords(count: vidrd_packed_b_floats(isa, n, k)))
                #expect(vidrd_pack_b(isa, 1, n, k, widened, k, packedFloats.floats) == 0)
                let packedHalves = try #require(AlignedWords(halves: vidrd_packed_b_halves(isa, n, k)))
                #expect(vidrd_pack_b_half(isa, n, k, bits, k, packedHalves.halves) == 0)
                let c0 = Self.values(m * (n + 2), seed: 5)
                var fromFloats = c0, fromHalves = c0
                #expect(vidrd_sgemm_packed(isa, m, n, k, a, k, packedFloats.floats, beta, &fromFloats, n + 2) == 0)
                #expect(vidrd_sgemm_packed_half(isa, format.kernelCode, m, n, k, a, k, packedHalves.halves, beta, &fromHalves, n + 2) == 0)
                #expect(fromHalves.map(\.bitPattern) == fromFloats.map(\.bitPattern), "\(format) m=\(m) n=\(n) k=\(k)")
            }
        }
    }

    /// The Winograd weight computed from the taps inside the product equals the load-time
    /// transform (`WinogradConv3x3.transform`) bit for bit, at all 16 positions.
    @Test(arguments: kernelISAs)
    func winogradFromTapsGivesTheTransformedWeightsBits(isa: vidrd_isa) throws {
        let kernels = ComputeKernels(requested: isa == VIDRD_ISA_AVX512 ? "avx512" : "avx2", supported: ComputeKernels.cpuSupported)
        for format in Self.halfFormats {
            for (cin, cout, rows) in [(16, 16, 9), (40, 70, 33), (300, 33, 2)] {
                let bits = Self.halfValues(cout * 9 * cin, format: format, seed: UInt32(cin + cout))
                let fromHalves = WinogradConv3x3(weight: .halves(bits, format), inChannels: cin, outChannels: cout, kernels: kernels)
                let fromFloats = WinogradConv3x3(weight: .floats(bits.map(format.widen)), inChannels: cin, outChannels: cout,
                                                 kernels: kernels)
                guard case .taps(let taps) = fromHalves.weights, case .transformed(let u) = fromFloats.weights else {
                    Issue.record("16-bit taps were not kept (\(format), isa \(isa))")
                    continue
                }
                // Nine 16-bit taps against sixteen fp32 matrices: 9/32 of the bytes.
                #expect(taps.bytes * 3 < u.reduce(0) { $0 + $1.bytes })
                let a = Self.values(rows * cin, seed: 6)
                for position in 0..<16 {
                    var c1 = [Float](repeating: .nan, count: rows * cout), c2 = c1
                    taps.multiply(position: position, rows: rows, a: a, lda: cin, c: &c1, ldc: cout)
                    u[position].multiply(rows: rows, a: a, lda: cin, accumulate: false, c: &c2, ldc: cout)
                    #expect(c1.map(\.bitPattern) == c2.map(\.bitPattern), "\(format) \(cin)x\(cout) position \(position)")
                }
            }
        }
    }

    /// Every layer the loader builds, from 16-bit values and from their widened copy, computes
    /// the same bits; with a kernel of ours it keeps the 16-bit values (half the bytes).
    @Test func layersFromHalvesComputeTheWidenedLayersBits() throws {
        let keeps = ComputeKernels.active.kernelISA != nil
        for format in Self.halfFormats {
            let (n, h, w, cin, cout) = (2, 5, 7, 24, 20)
            let x = Tensor(shape: [n, h, w, cin], scalars: Self.values(n * h * w * cin, seed: 7))
            let bias = Self.values(cout, seed: 8)
            var ws = Workspace()
            // Winograd (3×3, stride 1), im2col (stride 2) and 1×1 convolutions.
            for (kernel, stride) in [(3, 1), (3, 2), (1, 1)] {
                let bits = Self.halfValues(cout * cin * kernel * kernel, format: format, seed: UInt32(kernel * 10 + stride))
                let half = Conv2d(torchWeight: .halves(bits, format), bias: bias, inChannels: cin, outChannels: cout,
                                  kernel: kernel, stride: stride)
                let full = Conv2d(torchWeight: .floats(bits.map(format.widen)), bias: bias, inChannels: cin, outChannels: cout,
                                  kernel: kernel, stride: stride)
                #expect(half(x, workspace: &ws).scalars.map(\.bitPattern) == full(x, workspace: &ws).scalars.map(\.bitPattern),
                        "\(format) conv \(kernel)×\(kernel) stride \(stride)")
                switch half.method {
                case .winograd(let wg):
                    if case .taps = wg.weights { #expect(keeps) } else { #expect(!keeps) }
                case .gemm(let m): #expect(m.keepsHalves == keeps)
                }
            }
            let linearBits = Self.halfValues(cout * cin, format: format, seed: 11)
            let half = Linear(weight: .halves(linearBits, format), bias: bias, inFeatures: cin, outFeatures: cout)
            let full = Linear(weight: .floats(linearBits.map(format.widen)), bias: bias, inFeatures: cin, outFeatures: cout)
            let rows = Tensor(shape: [35, cin], scalars: Self.values(35 * cin, seed: 12))
            #expect(half(rows).scalars.map(\.bitPattern) == full(rows).scalars.map(\.bitPattern), "\(format) linear")
            #expect(half.weight.keepsHalves == keeps)
            if keeps { #expect(half.weight.bytes * 2 <= full.weight.bytes + 64) }

            let temporalBits = Self.halfValues(cout * cin * 3, format: format, seed: 13)
            let tHalf = TemporalConv(torchWeight: .halves(temporalBits, format), bias: bias, inChannels: cin, outChannels: cout)
            let tFull = TemporalConv(torchWeight: .floats(temporalBits.map(format.widen)), bias: bias, inChannels: cin, outChannels: cout)
            let (frames, pixels) = (4, 6)
            let clip = Self.values(n * frames * pixels * cin, seed: 14)
            var o1 = [Float](repeating: 0, count: n * frames * pixels * cout), o2 = o1
            tHalf.forward(clip, batch: n, frames: frames, pixels: pixels, into: &o1)
            tFull.forward(clip, batch: n, frames: frames, pixels: pixels, into: &o2)
            #expect(o1.map(\.bitPattern) == o2.map(\.bitPattern), "\(format) temporal conv")
        }
    }

    /// The loader hands a layer an F16 checkpoint's values as they are (exact mode, a kernel of
    /// ours), and widens them for the bf16 fast mode, which rounds weights its own way.
    @Test func loaderKeepsACheckpointsHalvesOnlyWhereLayersCanUseThem() throws {
        let dir = Fixture.root.appendingPathComponent("tiny-fp16/model/unet")
        let files = [try SafeTensorsFile(path: dir.appendingPathComponent("diffusion_pytorch_model.safetensors").path)]
        let name = "conv_in.weight"
        let shape = try #require(files[0].entries[name]?.shape)
        #expect(files[0].entries[name]?.dtype == .f16)
        let exact = WeightLoader(component: "unet", files: files)
        let values = try exact.takeWeight(name, shape: shape)
        if ComputeKernels.active.kernelISA != nil {
            guard case .halves(_, .f16) = values else { Issue.record("F16 weight was widened"); return }
        } else {
            guard case .floats = values else { Issue.record("no kernel of ours, yet 16-bit values kept"); return }
        }
        #expect(values.widened == (try files[0].floats(name)))
        if ComputePrecision.unavailability(.bf16) == nil {
            let fast = WeightLoader(component: "unet", files: files, precision: .bf16)
            guard case .floats = try fast.takeWeight(name, shape: shape) else { Issue.record("bf16 mode got 16-bit values"); return }
        }
    }

    /// A whole fp16 model, both ways it can hold its weights: the same bits, in less memory when
    /// the 16-bit values are kept.
    @Test func storageChangesNoBitOfAModel() throws {
        let f = try Fixture("tiny-fp16")
        let timesteps = try f.reference.integers("unet.timesteps").map { Float($0) }
        var outputs: [[UInt32]] = []
        for storage in WeightStorage.allCases {
            let unet = try UNet3DConditionModel(directory: f.component("unet"), storage: storage)
            let cond = try unet.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
            var ws = Workspace()
            outputs.append(try unet(f.tensor("unet.sample"), timesteps: timesteps, conditioning: cond, workspace: &ws)
                .scalars.map(\.bitPattern))
            let vae = try AutoencoderKL(directory: f.component("vae"), storage: storage)
            outputs.append(try vae.decode(f.tensor("vae.z"), temporal: vae.configuration.addTemporalConv, workspace: &ws)
                .scalars.map(\.bitPattern))
        }
        #expect(outputs[0] == outputs[2], "U-Net")
        #expect(outputs[1] == outputs[3], "VAE decode")
        #expect(WeightStorage(name: "FP32") == .fp32 && WeightStorage(name: "fp16") == nil)
    }
}
