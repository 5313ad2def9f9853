import Foundation
import VidrdProtocol

/// `GET /api/strategies`: the daemon's STRATEGIES list, default chain and limits as JSON, so the
/// page builds its chain editor from what this daemon really offers.
enum ServerDescription {
    static func json(strategies: StrategyList, info: ServerInfo) -> [UInt8] {
        let list: [[String: Any]] = strategies.strategies.map { s in
            [
                "name": s.name,
                "summary": s.summary,
                "params": s.params.map { p -> [String: Any] in
                    var d: [String: Any] = ["name": p.name, "kind": p.defaultValue.kindName, "default": p.defaultValue.chainText, "summary": p.summary]
                    if let m = p.minimum { d["min"] = m }
                    if let m = p.maximum { d["max"] = m }
                    return d
                },
            ]
        }
        let l = info.limits
        let body: [String: Any] = [
            "model": info.modelName,
            "server": info.serverName,
            "strategies": list,
            "defaultChain": strategies.defaultChain.map(\.chainText).joined(separator: ","),
            "limits": [
                "maxWidth": l.maxWidth, "maxHeight": l.maxHeight, "dimensionMultiple": l.dimensionMultiple,
                "maxSteps": l.maxSteps, "maxFramesPerClip": l.maxFramesPerClip, "maxPromptBytes": l.maxPromptBytes,
                "maxChainLength": l.maxChainLength,
            ],
        ]
        return encode(body)
    }

    /// JSON of a dictionary built here (never of outside input), so serialization cannot fail
    /// except for a bug; that still yields a valid object naming it.
    static func encode(_ object: [String: Any]) -> [UInt8] {
        guard JSONSerialization.isValidJSONObject(object),
              let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return Array(#"{"type":"error","message":"internal: cannot encode JSON"}"#.utf8)
        }
        return Array(data)
    }
}
