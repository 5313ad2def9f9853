import Foundation
import VidrdEval

/// `vidrd longeval`'s output: one markdown row per chain and the JSON document.
struct LongEvalReport {
    let scoreClips: [Int]

    struct ChainResult: Encodable {
        let chain: String
        let emit: String
        let spec: String
        let metrics: LongEvaluation
    }

    struct Settings: Encodable {
        let model: String
        let prompts: [String]
        let seeds: [UInt64]
        let clips: Int
        let steps: Int
        /// nil: the model's own.
        let scheduler: String?
        let guidance: Float
        let frames: Int
        let promptFrames: Int
        let scoreClips: [Int]
    }

    /// The two adherence columns of the table: clip 0 and clip 11 (else the last scored clip);
    /// the JSON has every scored clip.
    var early: Int { scoreClips.first ?? 0 }
    var late: Int { scoreClips.contains(11) ? 11 : (scoreClips.last ?? 0) }

    var header: String {
        let (e, l) = (early, late)
        return """
            | chain | emit | novelty | reversal | replay share | seam ratio | cadence | colour @\(e) | colour @\(l) | background @\(e) | background @\(l) | motion @\(e) | motion @\(l) | continuity (seams / in-clip) | frames/s |
            | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
            """
    }

    func row(_ r: ChainResult) -> String {
        let m = r.metrics
        func at(_ k: Int) -> Adherence.AtClip? { m.adherence.first { $0.clip == k } }
        func count(_ f: Fraction?) -> String { f.map { $0.total > 0 ? "\($0.hits)/\($0.total)" : "n/a" } ?? "n/a" }
        func percent(_ f: Fraction) -> String { f.value.map { String(format: "%.0f%%", $0 * 100) } ?? "n/a" }
        let cells = [
            r.chain, r.emit, num(m.novelty.novelty), num(m.novelty.reversal), num(m.replay.share, "%.2f"),
            num(m.seams.ratio), num(m.cadence, "%.2f"),
            count(at(early)?.colour), count(at(late)?.colour), count(at(early)?.background), count(at(late)?.background),
            count(at(early)?.motion), count(at(late)?.motion),
            "\(percent(m.continuity.seams)) / \(percent(m.continuity.inClip))", num(m.framesPerSecond, "%.2f"),
        ]
        return "| " + cells.joined(separator: " | ") + " |"
    }

    func num(_ x: Double?, _ format: String = "%.3f") -> String { x.map { String(format: format, $0) } ?? "n/a" }

    func json(settings: Settings, chains: [ChainResult]) throws -> Data {
        struct Document: Encodable {
            let tool = "vidrd longeval"
            let settings: Settings
            let chains: [ChainResult]
        }
        let e = JSONEncoder()
        e.outputFormatting = [.prettyPrinted, .sortedKeys]
        // Undefined metrics are omitted (Optional), never NaN, which JSON cannot hold.
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try e.encode(Document(settings: settings, chains: chains))
    }
}
