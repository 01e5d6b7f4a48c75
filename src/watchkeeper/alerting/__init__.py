"""Alert rules over signals: an expression language (a PromQL subset), the rule state machine
(inactive → pending → firing → resolved, persisted), grouping and silences, and notifiers."""
