import ArgumentParser
import VidrdDaemon

@main
struct VidrdDaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vidrd-daemon", abstract: "Streams endless text-to-video clips over TCP.")
    func run() throws {
        throw ValidationError("the daemon is not implemented yet")
    }
}
