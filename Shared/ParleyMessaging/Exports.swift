// The pure layers under this one, for the code that reaches them through ParleyMessaging.
@_exported import ParleyEnvelope
@_exported import ParleyJSON
