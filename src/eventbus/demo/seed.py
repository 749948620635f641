"""The seed's two example messages, verbatim (from its AWS CLI section)."""

SEED_DO_GOOD = (
    '{"metadata": {"containsPersonalData": false, "tracestate": "", "traceparent": '
    '"00-00000000000000000000000000000000-0000000000000000-01", "errorOrigin": "", "errorCode": "", '
    '"authorization": "", "publishDate": "2021-03-17T16:24:23.792955", "entityId": '
    '"44f33071-e444-494f-bcff-b5e3594f7628", "publisherName": "TestPublisher", "eventName": "doGood"}, '
    '"payload": {"foo": "bar"}}'
)
SEED_DO_NICE = (
    '{"metadata": {"containsPersonalData": true, "tracestate": "", "traceparent": '
    '"00-00000000000000000000000000000000-0000000000000000-01", "errorOrigin": "", "errorCode": "", '
    '"authorization": "", "publishDate": "2021-03-17T16:23:21.214293", "entityId": '
    '"4123a425-e234-491-bcdf-b5as59cz7611", "publisherName": "TestPublisher", "eventName": "doNice"}, '
    '"payload": {"foo": "bar"}}'
)
SEED_MESSAGES = (SEED_DO_GOOD, SEED_DO_NICE)
