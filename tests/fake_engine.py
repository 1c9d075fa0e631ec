"""The base of the tests' fake engines (an engine that is right, wrong, slow or leaky on purpose): a subclass
gives ``generate``; ``stream`` sends its text as one piece, then the ``Generation``."""


class FakeEngine:
    model_version = "1"

    def generate(self, req):
        raise NotImplementedError

    def stream(self, req):
        g = self.generate(req)
        yield g.text
        yield g

    def queue_depth(self):
        return 0

    def close(self):
        pass
