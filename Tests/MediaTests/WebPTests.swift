import Testing
@testable import VidrdMedia

@Suite struct WebPTests {
    func gradient(_ w: Int, _ h: Int, phase: Int = 0) -> RGBImage {
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h { for x in 0..<w {
            px[(y * w + x) * 3] = UInt8((x * 255) / Swift.max(1, w - 1))
            px[(y * w + x) * 3 + 1] = UInt8((y * 255) / Swift.max(1, h - 1))
            px[(y * w + x) * 3 + 2] = UInt8((phase * 40) % 256)
        } }
        return RGBImage(width: w, height: h, pixels: px)
    }

    @Test func losslessRoundTripIsExact() throws {
        let img = gradient(37, 21)
        let bytes = try WebP.encode(img, compression: .lossless)
        #expect(Array(bytes[0..<4]) == Array("RIFF".utf8))
        #expect(Array(bytes[8..<12]) == Array("WEBP".utf8))
        #expect(try WebP.decode(bytes) == img)
    }

    @Test func lossyRoundTripIsClose() throws {
        let img = gradient(64, 64)
        let decoded = try WebP.decode(try WebP.encode(img, compression: .lossy(quality: 90)))
        #expect(decoded.width == 64 && decoded.height == 64)
        let meanError = zip(decoded.pixels, img.pixels).map { abs(Int($0) - Int($1)) }.reduce(0, +) / img.pixels.count
        #expect(meanError < 6)
    }

    @Test func rejectsBadInput() throws {
        #expect(throws: WebPError.self) { try WebP.decode([1, 2, 3]) }
        #expect(throws: WebPError.invalidQuality(101)) { try WebP.encode(gradient(4, 4), compression: .lossy(quality: 101)) }
    }

    @Test func animationHoldsEveryFrame() throws {
        let writer = try AnimatedWebPWriter(width: 16, height: 12, fps: 8, compression: .lossless)
        let frames = (0..<5).map { gradient(16, 12, phase: $0) }
        for f in frames { try writer.add(f) }
        let decoded = try AnimatedWebPReader.frames(try writer.finish())
        #expect(decoded == frames)
    }
}

@Suite struct Y4MTests {
    @Test func headerNamesSizeRateAndColourSpace() {
        #expect(String(decoding: Y4M.header(width: 64, height: 48, fps: 8), as: UTF8.self) == "YUV4MPEG2 W64 H48 F8:1 Ip A1:1 C444 XCOLORRANGE=FULL\n")
        #expect(Y4M.rate(7.5) == (15, 2))
        #expect(Y4M.rate(29.97) == (2997, 100))
        #expect(Y4M.rate(.nan) == (8, 1))
    }

    @Test func bt601FullRange() {
        #expect(Y4M.ycbcr(0, 0, 0) == (0, 128, 128))
        #expect(Y4M.ycbcr(255, 255, 255) == (255, 128, 128))
        #expect(Y4M.ycbcr(255, 0, 0) == (76, 85, 255))
        #expect(Y4M.ycbcr(0, 0, 255) == (29, 255, 107))
        let frame = Y4M.frame(RGBImage(width: 2, height: 1, pixels: [255, 0, 0, 0, 0, 255]))
        #expect(frame == Array("FRAME\n".utf8) + [76, 29, 85, 255, 255, 107])
    }
}
