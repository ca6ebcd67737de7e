"""``remote`` OS layer: a ``pymemflow serve`` connection's own OS layer, used over HTTP.

``pymemflow -o remote:unix:/run/pymemflow.sock,conn=vm1 ps`` walks nothing here: the daemon's warm
OS layer answers, and records come back as the same ``ProcessInfo``/``ModuleInfo`` objects a local
chain returns. Importing this package and listing processes needs no NumPy (CLI cold start); process
memory (:mod:`.memory`) brings it in when first read.
"""
