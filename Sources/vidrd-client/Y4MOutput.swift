import Foundation
import VidrdMedia

#if canImport(Glibc)
import Glibc
#endif

/// `--y4m FILE` or `--y4m -`: a YUV4MPEG2 stream (VidrdMedia's `Y4M`), header first, then one
/// FRAME per received frame, so `| ffplay -`, `| mpv -` and `| ffmpeg -i - out.mp4` need no flags.
final class Y4MOutput: @unchecked Sendable {
    let path: String
    private let fd: Int32
    private let width: Int
    private let height: Int

    /// Opens (creates or truncates) the file, or takes standard output for `-`.
    init(path: String, width: Int, height: Int) throws {
        self.path = path
        self.width = width
        self.height = height
        if path == "-" {
            fd = STDOUT_FILENO
        } else {
            fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw Stream.OutputError(message: "cannot write \(path): \(String(cString: strerror(errno)))") }
        }
    }

    deinit { if fd != STDOUT_FILENO { close(fd) } }

    func writeHeader(fps: Double) throws { try write(Y4M.header(width: width, height: height, fps: fps)) }

    /// A frame whose size differs from the header's would corrupt every later frame of the
    /// stream, so it is an error rather than written.
    func write(frame image: RGBImage) throws {
        guard image.width == width, image.height == height else {
            throw Stream.OutputError(message: "\(path): a \(image.width)×\(image.height) frame in a \(width)×\(height) Y4M stream")
        }
        try write(Y4M.frame(image))
    }

    private func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, base + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw Stream.OutputError(message: "cannot write \(path): \(String(cString: strerror(errno)))")
                }
                offset += n
            }
        }
    }
}
