"""RadLens inference engine: Qt-free, never imports ``viewer``; torch is imported lazily."""
