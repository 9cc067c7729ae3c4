"""`radlens batch`: analyse every series of an archive (folder tree or PACS query), resumably.

Qt-free. The pieces: ``items`` (what to analyse), ``manifest`` (the SQLite record that makes
a run resumable), ``work`` (one series analysed, in a worker process or a Ray actor),
``runners`` (a local process pool, or Ray), ``driver`` (the loop that ties them together).
"""
