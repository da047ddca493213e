/// Plain-text tables for people: columns two spaces apart, numbers right-aligned. Pure, so the
/// layout is tested without any I/O.
public enum TextTable {
    public enum Alignment: Sendable { case left, right }

    /// One header line and a line per row. No line ends in blanks; `alignments` defaults to left for every column.
    public static func render(_ headers: [String], _ rows: [[String]], alignments: [Alignment] = []) -> String {
        var widths = headers.map(\.count)
        for row in rows {
            for (i, cell) in row.enumerated() {
                if i < widths.count { widths[i] = max(widths[i], cell.count) } else { widths.append(cell.count) }
            }
        }
        func line(_ cells: [String]) -> String {
            var parts: [String] = []
            for (i, cell) in cells.enumerated() {
                let pad = String(repeating: " ", count: max(0, widths[i] - cell.count))
                let right = i < alignments.count && alignments[i] == .right
                if right { parts.append(pad + cell) } else { parts.append(i == cells.count - 1 ? cell : cell + pad) }
            }
            var text = parts.joined(separator: "  ")
            while text.last == " " { text.removeLast() }
            return text
        }
        return ([line(headers)] + rows.map(line)).joined(separator: "\n")
    }
}
