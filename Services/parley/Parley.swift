// parley: Parley's operator CLI. Today it generates the dataflow documents; queues, links,
// parked entities, dead-letter replay and resync will be further subcommands.
import ArgumentParser

@main
struct Parley: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parley", abstract: "Parley's operator tool.", subcommands: [Dataflows.self])
}
