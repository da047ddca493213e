/// The environment keys the ERP and webshop simulators read (flags win over them). The
/// PowerOffice Go simulator reads none: it is configured by flags only.
public enum SimulatorEnvironment {
    public enum Customerp {
        public static let prefix = "CUSTOMERP_SIM"
        public static let apiKey = "CUSTOMERP_SIM_API_KEY"
        public static let bearerToken = "CUSTOMERP_SIM_BEARER_TOKEN"
        public static var keys: [String] { [apiKey, bearerToken] + FaultSettings.environmentKeys(prefix: prefix) }
    }

    public enum Customwebshop {
        public static let prefix = "CUSTOMWEBSHOP_SIM"
        public static let consumerKey = "CUSTOMWEBSHOP_SIM_CONSUMER_KEY"
        public static let consumerSecret = "CUSTOMWEBSHOP_SIM_CONSUMER_SECRET"
        public static let webhookURL = "CUSTOMWEBSHOP_SIM_WEBHOOK_URL"
        public static let webhookSecret = "CUSTOMWEBSHOP_SIM_WEBHOOK_SECRET"
        public static let bearerToken = "CUSTOMWEBSHOP_SIM_BEARER_TOKEN"
        public static var keys: [String] {
            [consumerKey, consumerSecret, webhookURL, webhookSecret, bearerToken] + FaultSettings.environmentKeys(prefix: prefix)
        }
    }
}
