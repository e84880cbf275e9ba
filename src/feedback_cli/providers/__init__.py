"""Providers: agents (writer, critic, planner, describer) and media (images, videos), chosen by name."""
