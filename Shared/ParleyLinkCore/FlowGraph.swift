import ParleyCanonical
import ParleyJSON
import ParleyEnvelope

/// The dataflows (DESIGN: "creation follows flow edges; updates follow links").
///
/// An edge S → T for an entity type means: a global entity with a member in S gets a record
/// created in T. Edges are per entity type; the product's six are ``standard``.
public struct FlowGraph: Sendable, Hashable {
    public struct Edge: Sendable, Hashable {
        public var from: SystemName
        public var to: SystemName
        public var entity: CanonicalEntityType

        public init(from: SystemName, to: SystemName, entity: CanonicalEntityType) {
            self.from = from
            self.to = to
            self.entity = entity
        }
    }

    public var edges: [Edge]

    public init(edges: [Edge]) { self.edges = edges }

    /// Customerp → Customwebshop → PowerOffice Go, for customers, orders and products.
    public static let standard = FlowGraph(
        edges: CanonicalEntityType.allCases.flatMap { entity in
            [Edge(from: .customerp, to: .customwebshop, entity: entity), Edge(from: .customwebshop, to: .powerofficego, entity: entity)]
        })

    /// The systems a global entity with `members` gets a new record in: every T without a
    /// member that an edge reaches from a system with a *confirmed* member. Edges from a
    /// system whose record is still being created do not count yet, so a chain advances one
    /// confirmed write at a time (the webshop copy must exist before PowerOffice Go gets one).
    public func creationTargets(entity: CanonicalEntityType, members: Set<SystemName>) -> [SystemName] {
        var targets: [SystemName] = []
        for edge in edges where edge.entity == entity && members.contains(edge.from) && !members.contains(edge.to) {
            if !targets.contains(edge.to) { targets.append(edge.to) }
        }
        return targets.sorted { $0.rawValue < $1.rawValue }
    }
}
