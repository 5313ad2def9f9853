import Foundation
import Testing
@testable import VidrdRuntime

/// `ResumableRandomSource` and the state coder: a restored source draws what the original would.
@Suite struct ResumableRandomSourceTests {
    /// Counts that take every path: torch's scalar path (< 16, whose sine half is cached), its
    /// 16-blocks with and without a redrawn tail, and odd counts of the seeded generator.
    static let counts = [1, 3, 16, 37, 5, 192, 2, 7]

    func expectResumes<R: ResumableRandomSource>(_ make: () -> R, _ what: String) throws {
        var original = make()
        for cut in 0..<Self.counts.count {
            var w = StateWriter()
            original.saveState(into: &w)
            #expect(w.bytes.count <= original.stateSizeBound, "\(what): \(w.bytes.count) bytes, bound \(original.stateSizeBound)")
            var restored = make()
            var r = StateReader(w.bytes)
            try restored.restoreState(from: &r)
            try r.finish(what)
            var reference = original
            for n in Self.counts {
                let a = try reference.standardNormal(shape: [n]), b = try restored.standardNormal(shape: [n])
                #expect(a.scalars.map(\.bitPattern) == b.scalars.map(\.bitPattern), "\(what): cut \(cut), count \(n)")
            }
            _ = try original.standardNormal(shape: [Self.counts[cut]])
        }
    }

    @Test func seededTorchAndTheAuthorsOrderResume() throws {
        try expectResumes({ SeededRandomSource(seed: 9) }, "seeded")
        try expectResumes({ TorchRandomSource(seed: 9) }, "torch")
        try expectResumes({ ReuseAndDiffuseDrawOrder(TorchRandomSource(seed: 9)) }, "torch-rd")
    }

    @Test func theAuthorsFirstDrawFlagIsRestored() throws {
        // Saved before the first draw, the wrapper must still assemble it frame by frame.
        let shape = [1, 2, 3, 4, 4]
        var a = ReuseAndDiffuseDrawOrder(TorchRandomSource(seed: 1))
        var w = StateWriter()
        a.saveState(into: &w)
        var b = ReuseAndDiffuseDrawOrder(TorchRandomSource(seed: 1))
        _ = try b.standardNormal(shape: shape)
        var r = StateReader(w.bytes)
        try b.restoreState(from: &r)
        #expect(try a.standardNormal(shape: shape) == b.standardNormal(shape: shape))
    }

    @Test func damagedSourceStateIsRefused() throws {
        var torch = TorchRandomSource(seed: 2)
        _ = torch.standardNormal(count: 3)
        var w = StateWriter()
        torch.saveState(into: &w)
        let bytes = w.bytes
        func refusal<R: ResumableRandomSource>(_ b: [UInt8], _ source: R) -> String? {
            var s = source
            var r = StateReader(b)
            do { try s.restoreState(from: &r); try r.finish("state"); return nil } catch let e as StateCodingError {
                return e.message
            } catch { return "unexpected \(error)" }
        }
        #expect(refusal(bytes, TorchRandomSource(seed: 0)) == nil)
        for n in 0..<bytes.count { #expect(refusal(Array(bytes.prefix(n)), TorchRandomSource(seed: 0))?.hasPrefix("truncated") == true) }
        #expect(refusal(bytes + [0], TorchRandomSource(seed: 0)) == "1 trailing bytes after state")
        var count = bytes
        count[0] = 0x71  // 624 = 0x270 → 0x271
        #expect(refusal(count, TorchRandomSource(seed: 0)) == "MT19937 state count is 625, expected 624")
        var index = bytes
        index[4 + 624 * 4] = 0x71
        index[4 + 624 * 4 + 1] = 0x02
        #expect(refusal(index, TorchRandomSource(seed: 0)) == "MT19937 index is 625, at most 624")
        var flag = bytes
        flag[4 + 624 * 4 + 4] = 2
        #expect(refusal(flag, TorchRandomSource(seed: 0)) == "cached normal flag: 2 is not a boolean (0 or 1)")
        var cached = bytes
        for k in 0..<8 { cached[bytes.count - 8 + k] = UInt8(truncatingIfNeeded: Double.nan.bitPattern >> (8 * k)) }
        #expect(refusal(cached, TorchRandomSource(seed: 0))?.hasPrefix("cached normal is nan") == true)

        #expect(refusal([UInt8](repeating: 0, count: 32), SeededRandomSource(seed: 0)) == "xoshiro state is all zero")
    }

    @Test func aTapePositionIsCheckedAgainstTheTape() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-resume-tape-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        let draws = (0..<3).map { k in Tensor(shape: [1, 2], scalars: [Float(k), -Float(k)]) }
        try NoiseTape.write(draws, to: path)
        var a = try TapeRandomSource(path: path)
        _ = try a.standardNormal(shape: [1, 2])
        var w = StateWriter()
        a.saveState(into: &w)
        var b = try TapeRandomSource(path: path)
        var r = StateReader(w.bytes)
        try b.restoreState(from: &r)
        #expect(b.position == 1)
        #expect(try b.standardNormal(shape: [1, 2]) == draws[1])

        var past = StateWriter()
        past.u64(4)
        past.u64(3)
        var pr = StateReader(past.bytes)
        #expect(throws: StateCodingError("tape position 4 is past the tape's 3 tensors")) { try b.restoreState(from: &pr) }
        var other = StateWriter()
        other.u64(0)
        other.u64(5)
        var or = StateReader(other.bytes)
        #expect(throws: StateCodingError("saved tape holds 5 tensors, \(path) holds 3")) { try b.restoreState(from: &or) }
        #expect(b.position == 2, "a refused restore leaves the position")
    }

    @Test func floatsRoundTripAsBitPatterns() throws {
        let values: [Float] = [0, -0.0, .nan, .infinity, -.infinity, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1.5]
        var w = StateWriter()
        w.f32Array(values)
        w.f64(-0.0)
        w.string("dsg")
        var r = StateReader(w.bytes)
        #expect(try r.f32Array("values", count: values.count, finite: false).map(\.bitPattern) == values.map(\.bitPattern))
        #expect(try r.f64("double").bitPattern == (-0.0 as Double).bitPattern)
        #expect(try r.string("name") == "dsg")
        try r.finish("values")
        var finite = StateReader(w.bytes)
        #expect(throws: StateCodingError("values: value 2 is nan, saved state holds finite values only")) {
            try finite.f32Array("values", count: values.count)
        }
        var wrong = StateReader(w.bytes)
        #expect(throws: StateCodingError("values count is 8, expected 7")) { try wrong.f32Array("values", count: 7) }
        var bounded = StateReader(w.bytes)
        #expect(throws: StateCodingError("values count is 8, at most 7 expected")) { try bounded.f32Array("values", max: 7, finite: false) }
        var upTo = StateReader(w.bytes)
        #expect(try upTo.f32Array("values", max: 9, finite: false).count == values.count)
        // A count far beyond the bytes is refused before anything is allocated.
        var huge = StateWriter()
        huge.u32(0xFFFF_FFFF)
        var hr = StateReader(huge.bytes)
        #expect(throws: StateCodingError("truncated at values: needs 17179869180 bytes, 0 left")) {
            try hr.f32Array("values", count: 0xFFFF_FFFF)
        }
    }
}
