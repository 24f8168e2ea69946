"""What leaves and enters the station: the MQTT link, its durable outbox and the message schema."""
