"""What tests, the demo and the bench use, never the worker: the Genesys simulator
(:mod:`.simulator`) and a throwaway InfluxDB 1.x server (:mod:`.influxd`).

As ``trio.testing`` is to trio: public and typed, so users test their own embedding against
the same simulator, but ``python -m trio_transcripts run`` imports nothing from here.
"""
