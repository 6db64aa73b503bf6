"""The voice IVR's call engine, being built for issue #7 over several sessions: after-hours
callers to the hotline press keys or speak, hear prompts and knowledge-base answers, and leave
messages that become tickets. Its modules are the parts of that engine, among them pure
building blocks such as in-band DTMF detection (``dtmf``), Chinese spoken-number
normalisation of what the recogniser hears (``numerals``) and 16-bit mono PCM helpers
(``pcm``).
"""
