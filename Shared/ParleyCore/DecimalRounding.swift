import Foundation

extension Decimal {
    /// Rounded to `scale` decimals, halves away from zero (`0.125` → `0.13`, `-0.125` → `-0.13`):
    /// `NSDecimalRound` with `.plain`. Parley's one rounding rule for money (to øre at the
    /// native edge) and for integer checks.
    public func roundedHalfAwayFromZero(scale: Int) -> Decimal {
        var value = self
        var result = Decimal()
        NSDecimalRound(&result, &value, scale, .plain)
        return result
    }
}
