import ArgumentParser
import VidrdRuntime

@main
struct VidrdCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vidrd", abstract: "Offline vidrd tool.")
}
