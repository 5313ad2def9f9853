/// Protocol versions this implementation speaks. See docs/PROTOCOL.md §2.
public enum VidrdProtocolVersion {
    /// The newest protocol version this implementation speaks.
    public static let current: UInt16 = 1
    /// The oldest protocol version this implementation speaks.
    public static let minimum: UInt16 = 1
    /// All versions this implementation speaks.
    public static var supported: ClosedRange<UInt16> { minimum...current }

    /// Server-side version choice (docs/PROTOCOL.md §4.2): the highest version in both the
    /// client's offer `clientMin...clientMax` and `supported`; nil when the ranges do not overlap
    /// (the server then answers a fatal `UNIMPLEMENTED` error).
    public static func negotiate(
        clientMin: UInt16, clientMax: UInt16, supported: ClosedRange<UInt16> = supported
    ) -> UInt16? {
        guard clientMin <= clientMax else { return nil }
        let high = min(clientMax, supported.upperBound)
        let low = max(clientMin, supported.lowerBound)
        return low <= high ? high : nil
    }
}
