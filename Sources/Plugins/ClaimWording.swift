// How conflicts between declared claims are worded (VideoStream.checkComposition), in the terms
// of docs/PLUGINS.md ("frames j ≥ M of clips ≥ 1"), so a message says what each strategy claims
// and where they meet instead of repeating one side's raw selection names.

extension ClipSelection {
    var phrase: String {
        switch self {
        case .first: "clip 0"
        case .continuing: "clips ≥ 1"
        case .all: "every clip"
        }
    }

    func intersection(_ o: ClipSelection) -> ClipSelection { self == .all ? o : self }
}

extension FrameSelection {
    var phrase: String {
        switch self {
        case .all: "all frames"
        case .prompt: "frames j < M"
        case .new: "frames j ≥ M"
        }
    }

    func intersection(_ o: FrameSelection) -> FrameSelection { self == .all ? o : self }
}

extension NoiseClaim {
    var phrase: String { "\(frames.phrase) of \(clips.phrase)" }
}

/// `"a" (claim) and "b" (claim) both write the initial noise of <overlap> in the <layer> layer`.
func noiseConflictMessage(_ a: String, _ ca: NoiseClaim, _ b: String, _ cb: NoiseClaim) -> String {
    let frames = ca.frames.intersection(cb.frames), clips = ca.clips.intersection(cb.clips)
    return "\"\(a)\" (\(ca.phrase)) and \"\(b)\" (\(cb.phrase)) both write the initial noise of \(frames.phrase) of \(clips.phrase) in the \(ca.layer.rawValue) layer"
}
