"""Exactness: how close each method comes to the tilted target pi_B * exp(beta r).

``world`` builds enumerable step trees served to the real loop, ``distributions``
computes the exact laws of the target and of every method, ``montecarlo`` measures
them by running :class:`gsi.decoding.Decoder` on many replicas.
"""
