import CWebP

/// An 8-bit RGB image, rows top to bottom, no padding.
public struct RGBImage: Sendable, Equatable {
    public let width: Int
    public let height: Int
    public var pixels: [UInt8]

    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(pixels.count == width * height * 3, "RGB image \(width)×\(height) needs \(width * height * 3) bytes")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// From floats in [0, 1] laid out `[H, W, 3]` (values outside are clamped; rounding to nearest).
    public init(width: Int, height: Int, unitFloats: ArraySlice<Float>) {
        precondition(unitFloats.count == width * height * 3)
        self.width = width
        self.height = height
        self.pixels = unitFloats.map { UInt8(Swift.min(Swift.max($0, 0), 1) * 255 + 0.5) }
    }
}

public enum WebPError: Error, CustomStringConvertible, Equatable {
    case encodeFailed(String)
    case decodeFailed(String)
    case invalidQuality(Float)

    public var description: String {
        switch self {
        case let .encodeFailed(s): return "WebP encoding failed: \(s)"
        case let .decodeFailed(s): return "WebP decoding failed: \(s)"
        case let .invalidQuality(q): return "WebP quality must be within 0...100, got \(q)"
        }
    }
}

/// How frames are compressed.
public enum WebPCompression: Sendable, Equatable {
    case lossy(quality: Float)
    case lossless
}

public enum WebP {
    /// Encodes one still image.
    public static func encode(_ image: RGBImage, compression: WebPCompression) throws -> [UInt8] {
        guard image.width > 0, image.height > 0, image.width <= 16383, image.height <= 16383 else {
            throw WebPError.encodeFailed("image size \(image.width)×\(image.height) is outside 1...16383")
        }
        var output: UnsafeMutablePointer<UInt8>?
        let size: Int = image.pixels.withUnsafeBufferPointer { px in
            switch compression {
            case .lossless:
                return WebPEncodeLosslessRGB(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 3), &output)
            case .lossy(let q):
                return WebPEncodeRGB(px.baseAddress, Int32(image.width), Int32(image.height), Int32(image.width * 3), q, &output)
            }
        }
        if case .lossy(let q) = compression, !(0...100).contains(q) { WebPFree(output); throw WebPError.invalidQuality(q) }
        guard size > 0, let output else { throw WebPError.encodeFailed("libwebp returned no data") }
        defer { WebPFree(output) }
        return Array(UnsafeBufferPointer(start: output, count: size))
    }

    /// Decodes a still WebP image to RGB.
    public static func decode(_ data: [UInt8]) throws -> RGBImage {
        var w: Int32 = 0, h: Int32 = 0
        guard let rgb = data.withUnsafeBufferPointer({ WebPDecodeRGB($0.baseAddress, $0.count, &w, &h) }) else {
            throw WebPError.decodeFailed("not a decodable WebP image (\(data.count) bytes)")
        }
        defer { WebPFree(rgb) }
        return RGBImage(width: Int(w), height: Int(h), pixels: Array(UnsafeBufferPointer(start: rgb, count: Int(w * h * 3))))
    }
}

/// Builds one animated WebP from frames of equal size (libwebpmux `WebPAnimEncoder`).
public final class AnimatedWebPWriter {
    private var encoder: OpaquePointer?
    private var config = WebPConfig()
    public let width: Int
    public let height: Int
    public let frameDurationMs: Int
    private var timestampMs = 0
    public private(set) var frameCount = 0

    public init(width: Int, height: Int, fps: Double, compression: WebPCompression) throws {
        guard width > 0, height > 0, fps > 0, fps <= 1000 else {
            throw WebPError.encodeFailed("invalid animation geometry \(width)×\(height) at \(fps) fps")
        }
        self.width = width
        self.height = height
        frameDurationMs = Swift.max(1, Int((1000 / fps).rounded()))
        var options = WebPAnimEncoderOptions()
        guard WebPAnimEncoderOptionsInit(&options) != 0, WebPConfigInit(&config) != 0 else {
            throw WebPError.encodeFailed("libwebp version mismatch")
        }
        switch compression {
        case .lossless: config.lossless = 1
        case .lossy(let q):
            guard (0...100).contains(q) else { throw WebPError.invalidQuality(q) }
            config.quality = q
        }
        encoder = WebPAnimEncoderNew(Int32(width), Int32(height), &options)
        guard encoder != nil else { throw WebPError.encodeFailed("cannot create animation encoder") }
    }

    deinit { if let encoder { WebPAnimEncoderDelete(encoder) } }

    public func add(_ image: RGBImage) throws {
        guard image.width == width, image.height == height else {
            throw WebPError.encodeFailed("frame is \(image.width)×\(image.height), animation is \(width)×\(height)")
        }
        var picture = WebPPicture()
        guard WebPPictureInit(&picture) != 0 else { throw WebPError.encodeFailed("picture init") }
        picture.width = Int32(width)
        picture.height = Int32(height)
        picture.use_argb = 1
        defer { WebPPictureFree(&picture) }
        let imported = image.pixels.withUnsafeBufferPointer { WebPPictureImportRGB(&picture, $0.baseAddress, Int32(width * 3)) }
        guard imported != 0 else { throw WebPError.encodeFailed("cannot import frame") }
        guard WebPAnimEncoderAdd(encoder, &picture, Int32(timestampMs), &config) != 0 else {
            throw WebPError.encodeFailed(String(cString: WebPAnimEncoderGetError(encoder)))
        }
        timestampMs += frameDurationMs
        frameCount += 1
    }

    /// The finished file's bytes.
    public func finish() throws -> [UInt8] {
        guard WebPAnimEncoderAdd(encoder, nil, Int32(timestampMs), nil) != 0 else {
            throw WebPError.encodeFailed(String(cString: WebPAnimEncoderGetError(encoder)))
        }
        var data = WebPData()
        WebPDataInit(&data)
        defer { WebPDataClear(&data) }
        guard WebPAnimEncoderAssemble(encoder, &data) != 0, let bytes = data.bytes else {
            throw WebPError.encodeFailed(String(cString: WebPAnimEncoderGetError(encoder)))
        }
        return Array(UnsafeBufferPointer(start: bytes, count: data.size))
    }
}

/// Decodes every frame of an animated WebP (used by tests and tools to verify output).
public enum AnimatedWebPReader {
    public static func frames(_ bytes: [UInt8]) throws -> [RGBImage] {
        try bytes.withUnsafeBufferPointer { buf -> [RGBImage] in
            var data = WebPData(bytes: buf.baseAddress, size: buf.count)
            var options = WebPAnimDecoderOptions()
            guard WebPAnimDecoderOptionsInit(&options) != 0 else { throw WebPError.decodeFailed("options") }
            options.color_mode = MODE_RGBA
            guard let decoder = WebPAnimDecoderNew(&data, &options) else {
                throw WebPError.decodeFailed("not an animated WebP (\(bytes.count) bytes)")
            }
            defer { WebPAnimDecoderDelete(decoder) }
            var info = WebPAnimInfo()
            guard WebPAnimDecoderGetInfo(decoder, &info) != 0 else { throw WebPError.decodeFailed("info") }
            let (w, h) = (Int(info.canvas_width), Int(info.canvas_height))
            var out: [RGBImage] = []
            while WebPAnimDecoderHasMoreFrames(decoder) != 0 {
                var rgba: UnsafeMutablePointer<UInt8>?
                var ts: Int32 = 0
                guard WebPAnimDecoderGetNext(decoder, &rgba, &ts) != 0, let rgba else { throw WebPError.decodeFailed("frame") }
                var rgb = [UInt8](repeating: 0, count: w * h * 3)
                for p in 0..<(w * h) { for c in 0..<3 { rgb[p * 3 + c] = rgba[p * 4 + c] } }
                out.append(RGBImage(width: w, height: h, pixels: rgb))
            }
            return out
        }
    }
}
