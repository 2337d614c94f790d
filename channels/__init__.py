"""Channel adapters: each turns its inbound traffic into InboundMessage and delivers replies."""
