import Foundation
import Testing
@testable import VidrdRuntime

/// `TorchRandomSource` against PyTorch's CPU generator (tools/reference/make_torch_randn_fixture.py).
@Suite struct RandomSourceTests {
    /// `torch.randn(16, generator=torch.Generator().manual_seed(0))[:4]`, recorded from torch 2.13 (AVX2 kernel), as bit patterns.
    @Test func firstValuesOfSeedZeroArePinned() {
        var r = TorchRandomSource(seed: 0)
        let v = r.standardNormal(count: 16)
        #expect(Array(v.prefix(4)).map(\.bitPattern) == Self.seedZeroFirstFour)
    }

    static let seedZeroFirstFour: [UInt32] = [0xBF90_1B85, 0xBF93_808A, 0xBE80_4BD6, 0xBEDE_255D]  // -1.1258398, -1.1523602, -0.2505786, -0.4338788

    @Test func drawSequencesMatchTorchBitForBit() throws {
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/torch-randn")
        let file = try SafeTensorsFile(path: dir.appendingPathComponent("reference.safetensors").path)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("reference.json"))) as? [String: Any])
        let cases = try #require(json["cases"] as? [[String: Any]])
        #expect(!cases.isEmpty)
        for c in cases {
            let seed = try #require((c["seed"] as? NSNumber)?.uint64Value)
            let shapes = try #require(c["shapes"] as? [[Int]])
            var r = TorchRandomSource(seed: seed)
            for (k, shape) in shapes.enumerated() {
                let got = try r.standardNormal(shape: shape)
                let expected = try file.tensor("\(seed).\(k)")
                let differing = zip(got.scalars, expected.scalars).filter { $0.bitPattern != $1.bitPattern }.count
                #expect(got.shape == expected.shape)
                #expect(differing == 0, "seed \(seed) draw \(k) \(shape): \(differing) of \(expected.count) values differ")
            }
        }
    }

    /// The authors' draw order: clip 0 is F one-frame draws, placed frame by frame; later draws whole.
    @Test func reuseAndDiffuseOrderDrawsTheFirstClipFrameByFrame() throws {
        var ordered = ReuseAndDiffuseDrawOrder(TorchRandomSource(seed: 3))
        var plain = TorchRandomSource(seed: 3)
        let clip0 = try ordered.standardNormal(shape: [1, 2, 3, 4, 4])
        for f in 0..<3 {
            let frame = try plain.standardNormal(shape: [1, 2, 1, 4, 4])
            #expect(clip0.latentFrameForTest(f) == frame.scalars)
        }
        #expect(try ordered.standardNormal(shape: [1, 2, 3, 4, 4]).scalars == (try plain.standardNormal(shape: [1, 2, 3, 4, 4])).scalars)
    }
}

extension Tensor {
    /// Frame f of `[1, C, F, h, w]`, channel-major.
    func latentFrameForTest(_ f: Int) -> [Float] {
        let c = shape[1], n = shape[2], plane = shape[3] * shape[4]
        var out: [Float] = []
        for ch in 0..<c {
            let start = (ch * n + f) * plane
            out.append(contentsOf: scalars[start..<(start + plane)])
        }
        return out
    }
}
