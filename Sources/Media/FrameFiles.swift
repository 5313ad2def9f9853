/// The one naming scheme for frames written to a folder, used by `vidrd clip`, `vidrd generate`
/// and `vidrd-client --out` (and by PROTOCOL.md §12's Python client): `frame_NNNNNN.webp`, the
/// frame's number (within the clip for `vidrd clip`, stream-wide otherwise) zero-padded to six
/// digits, so that a plain sort is frame order for streams of up to a million frames.
public enum FrameFiles {
    public static func name(_ number: Int64) -> String {
        let digits = String(number)
        return "frame_" + String(repeating: "0", count: max(0, 6 - digits.count)) + digits + ".webp"
    }
}
