import Crypto
import Foundation
import VidrdRuntime

/// A digest that tells one model folder from another, so that a continuation made with one
/// model is never used with another (docs/DAEMON.md, "Resumable sessions").
///
/// A retrained checkpoint keeps its architecture, so names, sizes and safetensors headers alone
/// would match: the weights' bytes must count. Small files are hashed whole; in a large one the
/// first MiB (the header and the first tensors) and 64 KiB every 16 MiB, which every retraining
/// or fine-tuning changes, so a ModelScope-size folder (~3 GB) costs ~12 MB of reading.
enum ModelFingerprint {
    static let wholeFileLimit = 64 << 20
    static let headBytes = 1 << 20
    static let sampleBytes = 64 << 10
    static let sampleStride = 16 << 20

    /// SHA-256 over every regular file under `directory` (sorted relative paths, sizes, contents
    /// as above). A file that cannot be read contributes its error, so two folders that fail
    /// differently still differ. A precision other than fp32 counts too: the bf16 mode's frames
    /// differ from fp32's, so a stream must not resume across the two (fp32 adds nothing, so
    /// fp32 fingerprints stay what they were).
    static func compute(_ directory: URL, precision: ComputePrecision = .fp32) -> [UInt8] {
        var hash = SHA256()
        if precision != .fp32 { hash.update(data: Array("precision=\(precision.rawValue)\0".utf8)) }
        let root = directory.standardizedFileURL.resolvingSymlinksInPath()
        let files = regularFiles(under: root)
        for relative in files {
            let url = root.appendingPathComponent(relative)
            hash.update(data: Array("\(relative)\0".utf8))
            guard let handle = try? FileHandle(forReadingFrom: url) else {
                hash.update(data: Array("unreadable\0".utf8))
                continue
            }
            defer { try? handle.close() }
            let size = (try? handle.seekToEnd()) ?? 0
            withUnsafeBytes(of: size.bigEndian) { hash.update(bufferPointer: $0) }
            var offsets: [(UInt64, Int)] = []
            if size <= UInt64(wholeFileLimit) {
                offsets = [(0, Int(size))]
            } else {
                offsets.append((0, headBytes))
                var at = UInt64(sampleStride)
                while at + UInt64(sampleBytes) <= size {
                    offsets.append((at, sampleBytes))
                    at += UInt64(sampleStride)
                }
                offsets.append((size - UInt64(sampleBytes), sampleBytes))
            }
            for (offset, count) in offsets {
                guard (try? handle.seek(toOffset: offset)) != nil, let data = try? handle.read(upToCount: count) else {
                    hash.update(data: Array("short read\0".utf8))
                    break
                }
                hash.update(data: data)
            }
        }
        return Array(hash.finalize())
    }

    /// Paths relative to `root`, sorted, of every regular file below it (symlinked files
    /// followed, hidden files included: a model is whatever the loader may read).
    static func regularFiles(under root: URL) -> [String] {
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            return []
        }
        var out: [String] = []
        let prefix = root.path.hasSuffix("/") ? root.path : root.path + "/"
        for case let url as URL in walker {
            let resolved = url.resolvingSymlinksInPath()
            guard (try? resolved.resourceValues(forKeys: [.isRegularFileKey]).isRegularFile) == true else { continue }
            let path = url.standardizedFileURL.path
            out.append(path.hasPrefix(prefix) ? String(path.dropFirst(prefix.count)) : path)
        }
        return out.sorted()
    }

    /// The first bytes in hex, for messages and logs.
    static func short(_ digest: [UInt8]) -> String {
        digest.prefix(6).map { String(format: "%02x", $0) }.joined()
    }
}
