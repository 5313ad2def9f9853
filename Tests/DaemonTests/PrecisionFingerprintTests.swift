import Foundation
import Testing
import VidrdRuntime

@testable import VidrdDaemon

/// bf16 frames are not fp32's, so a continuation must not resume across precisions: the
/// precision is part of the model's fingerprint, which continuations carry and check.
@Suite struct PrecisionFingerprintTests {
    @Test func theFingerprintTellsPrecisionsApartAndKeepsFP32sAsItWas() {
        let dir = Fixture.modelDirectory
        let fp32 = ModelFingerprint.compute(dir)
        #expect(ModelFingerprint.compute(dir, precision: .fp32) == fp32)
        #expect(ModelFingerprint.compute(dir, precision: .bf16) != fp32)
        #expect(ModelFingerprint.compute(dir, precision: .bf16) == ModelFingerprint.compute(dir, precision: .bf16))
    }
}
