import Foundation

/// Where the model that ships with vidrd (`Models/vidrd-tiny`, trained by `tools/train`) is found
/// when no `--model` is given. The daemon, the offline tool and anything embedding the runtime use
/// this one lookup so that "the default model" means the same folder everywhere.
public enum EmbeddedModel {
    /// The folder name, relative to a checkout's root.
    public static let relativePath = "Models/vidrd-tiny"

    /// `Models/vidrd-tiny` under `currentDirectory`, else under the package root that contains the
    /// executable (`<root>/.build/<config>/<tool>`, so a tool started from elsewhere still finds it).
    /// A folder counts only when it holds a `model_index.json`.
    public static func locate(
        currentDirectory: String = FileManager.default.currentDirectoryPath,
        executablePath: String = CommandLine.arguments.first ?? ""
    ) -> URL? {
        let fm = FileManager.default
        var roots = [URL(fileURLWithPath: currentDirectory)]
        if !executablePath.isEmpty {
            var dir = URL(fileURLWithPath: executablePath).resolvingSymlinksInPath().deletingLastPathComponent()
            for _ in 0..<5 {
                if fm.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) {
                    roots.append(dir)
                    break
                }
                dir = dir.deletingLastPathComponent()
            }
        }
        for root in roots {
            let folder = root.appendingPathComponent(relativePath)
            if fm.fileExists(atPath: folder.appendingPathComponent("model_index.json").path) {
                return folder.standardizedFileURL
            }
        }
        return nil
    }
}
