import ArgumentParser
import VidrdClient

@main
struct VidrdClientCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "vidrd-client", abstract: "Streams clips from a vidrd daemon.")
    func run() throws {
        throw ValidationError("the client is not implemented yet")
    }
}
