import Foundation

/// Writes an animated WebP to disk frame by frame from still WebP files *as received* (no
/// decoding, no re-encoding: each still's VP8/VP8L/ALPH chunks become one ANMF frame). Memory
/// stays constant however long the stream runs; `finish()` patches the RIFF size.
///
/// Container layout (Google's WebP container spec): `RIFF size WEBP`, `VP8X` (animation flag,
/// canvas), `ANIM` (background, loop count), then one `ANMF` chunk per frame.
public final class AnimatedWebPFile {
    public let width: Int
    public let height: Int
    public let frameDurationMs: Int
    public private(set) var frameCount = 0
    private let handle: FileHandle
    private let path: String
    private var bytesWritten = 0
    private var hasAlpha = false
    private var finished = false

    public enum Failure: Error, CustomStringConvertible {
        case invalidWebP(String)
        case io(String)

        public var description: String {
            switch self {
            case .invalidWebP(let s): "not a still WebP frame: \(s)"
            case .io(let s): s
            }
        }
    }

    /// Creates (truncates) `path`. `fps` sets each frame's duration.
    public init(path: String, width: Int, height: Int, fps: Double, loopCount: UInt16 = 0) throws {
        guard (1...16384).contains(width), (1...16384).contains(height), fps > 0 else {
            throw Failure.invalidWebP("canvas \(width)×\(height) at \(fps) fps")
        }
        self.width = width
        self.height = height
        self.path = path
        frameDurationMs = max(1, min(0xFF_FFFF, Int((1000 / fps).rounded())))
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw Failure.io("cannot create \(path)")
        }
        handle = h
        var head: [UInt8] = Array("RIFF".utf8) + le32(0) + Array("WEBP".utf8)
        head += Array("VP8X".utf8) + le32(10) + [0x02, 0, 0, 0] + le24(width - 1) + le24(height - 1)
        head += Array("ANIM".utf8) + le32(6) + [0, 0, 0, 0] + [UInt8(loopCount & 0xFF), UInt8(loopCount >> 8)]
        try write(head)
    }

    deinit {
        if !finished { try? handle.close() }
    }

    /// Appends one still WebP file (exactly as a FRAME carried it).
    public func add(webp: [UInt8]) throws {
        guard webp.count >= 20, Array(webp[0..<4]) == Array("RIFF".utf8), Array(webp[8..<12]) == Array("WEBP".utf8) else {
            throw Failure.invalidWebP("no RIFF/WEBP header")
        }
        var image: [UInt8] = []
        var i = 12
        var frameWidth = width, frameHeight = height
        while i + 8 <= webp.count {
            let fourcc = String(decoding: webp[i..<(i + 4)], as: UTF8.self)
            let size = Int(webp[i + 4]) | Int(webp[i + 5]) << 8 | Int(webp[i + 6]) << 16 | Int(webp[i + 7]) << 24
            let end = i + 8 + size + (size & 1)
            guard i + 8 + size <= webp.count else { throw Failure.invalidWebP("chunk \(fourcc) runs past the end") }
            switch fourcc {
            case "VP8 ", "VP8L", "ALPH":
                if fourcc == "ALPH" { hasAlpha = true }
                if fourcc == "VP8L", size >= 5 {
                    let b = webp[(i + 9)..<(i + 13)].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
                    frameWidth = Int(b & 0x3FFF) + 1
                    frameHeight = Int((b >> 14) & 0x3FFF) + 1
                }
                if fourcc == "VP8 ", size >= 10 {
                    let p = i + 8
                    frameWidth = Int(UInt16(webp[p + 6]) | UInt16(webp[p + 7]) << 8) & 0x3FFF
                    frameHeight = Int(UInt16(webp[p + 8]) | UInt16(webp[p + 9]) << 8) & 0x3FFF
                }
                image += webp[i..<min(end, webp.count)]
                if end > webp.count { image.append(0) }
            default:
                break  // VP8X, ICCP, EXIF, XMP of a still: not part of an ANMF frame
            }
            i = end
        }
        guard !image.isEmpty else { throw Failure.invalidWebP("no image chunk") }
        guard frameWidth == width, frameHeight == height else {
            throw Failure.invalidWebP("frame is \(frameWidth)×\(frameHeight), the animation \(width)×\(height)")
        }
        var chunk: [UInt8] = Array("ANMF".utf8) + le32(16 + image.count)
        chunk += le24(0) + le24(0) + le24(width - 1) + le24(height - 1) + le24(frameDurationMs) + [0x02]  // no blending, no disposal
        chunk += image
        try write(chunk)
        frameCount += 1
    }

    /// Closes the file without finishing it (the caller removes it).
    public func discard() {
        guard !finished else { return }
        finished = true
        try? handle.close()
    }

    /// Patches the header and closes the file. An animation needs at least one frame.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        defer { try? handle.close() }
        guard frameCount > 0 else { throw Failure.io("\(path): no frames were added") }
        do {
            try handle.seek(toOffset: 4)
            try handle.write(contentsOf: le32(bytesWritten - 8))
            if hasAlpha {
                try handle.seek(toOffset: 20)
                try handle.write(contentsOf: [0x12])
            }
            try handle.synchronize()
        } catch {
            throw Failure.io("\(path): \(error.localizedDescription)")
        }
    }

    private func write(_ bytes: [UInt8]) throws {
        do {
            try handle.write(contentsOf: bytes)
        } catch {
            throw Failure.io("\(path): \(error.localizedDescription)")
        }
        bytesWritten += bytes.count
    }
}

private func le32(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF), UInt8(v >> 24 & 0xFF)] }
private func le24(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v >> 16 & 0xFF)] }
