"""Reference test vectors (reference/courier-feeds.md §1.5, §1.8, §2.4, §2.6, §3.2, §3.5, §4.1, §4.4).

The signed texts are copied byte for byte from the reference sheet; keys and salts are the
sheet's fake demo values.
"""

# ruff: noqa: E501

KDNIAO_REQUEST_DATA = '{"EBusinessID":"1000001","PushTime":"2024-05-06 10:20:30","Count":"1","Data":[{"EBusinessID":"1000001","OrderCode":"ORD-TEST-0001","ShipperCode":"ZTO","LogisticCode":"ZT0000000000001","Success":true,"Reason":"","State":"2","StateEx":"202","Location":"杭州市","CallBack":"tenant-a","Traces":[{"AcceptTime":"2024-05-05 18:01:00","AcceptStation":"快件已揽收","Location":"上海市","Action":"1","Remark":""},{"AcceptTime":"2024-05-06 09:15:00","AcceptStation":"快件正在派送中","Location":"杭州市","Action":"202","Remark":""}]}]}'
KDNIAO_APP_KEY = "demo-appkey-not-real"
KDNIAO_MD5_HEX = "dde12cc7caeb0b0ac434a7b81a4aa8e6"
KDNIAO_DATA_SIGN = "ZGRlMTJjYzdjYWViMGIwYWM0MzRhN2I4MWE0YWE4ZTY="

KUAIDI100_PARAM = '{"status":"polling","billstatus":"got","message":"","autoCheck":"0","comOld":"","comNew":"","lastResult":{"message":"ok","state":"5","status":"200","condition":"F00","ischeck":"0","com":"zhongtong","nu":"ZT0000000000002","data":[{"context":"快件正在派送中","time":"2024-05-06 09:15:00","ftime":"2024-05-06 09:15:00","status":"派件","statusCode":"5"},{"context":"快件已揽收","time":"2024-05-05 18:01:00","ftime":"2024-05-05 18:01:00","status":"揽收","statusCode":"1"}]}}'
KUAIDI100_SALT = "demo-salt-not-real"
KUAIDI100_SIGN = "A578D430972E50828D24D8AE04E4F032"

TRACK17_BODY = '{"event":"TRACKING_UPDATED","data":{"number":"RR000000000CN","carrier":3011,"param":null,"tag":"ORD-TEST-0003","track_info":{"latest_status":{"status":"Exception","sub_status":"Exception_Returning","sub_status_descr":null},"latest_event":{"time_iso":"2024-05-06T09:15:00+08:00","time_utc":"2024-05-06T01:15:00Z","description":"Returned to sender","location":"Hangzhou","stage":"Returning","sub_status":"Exception_Returning"},"tracking":{"providers":[{"provider":{"key":3011,"name":"Example Post"},"events":[{"time_iso":"2024-05-06T09:15:00+08:00","time_utc":"2024-05-06T01:15:00Z","description":"Returned to sender","location":"Hangzhou","stage":"Returning","sub_status":"Exception_Returning"}]}]}}}}'
TRACK17_KEY = "demo-security-key-not-real"
TRACK17_SIGN = "e0db0baf9f17abc5d0b4d5fe197733257f9aa5395bedb515c2b89563e3c52693"

AFTERSHIP_BODY = '{"event":"tracking_update","event_id":"00000000-0000-4000-8000-000000000001","is_tracking_first_tag":true,"ts":1714960500,"msg":{"id":"demo0000000000000000000000000001","tracking_number":"1Z0000000000000004","slug":"ups","tag":"Exception","subtag":"Exception_007","subtag_message":"Incorrect Address","checkpoints":[{"checkpoint_time":"2024-05-06T09:15:00","message":"Address information is incorrect","slug":"ups","tag":"Exception","subtag":"Exception_007","subtag_message":"Incorrect Address","location":"Hangzhou"}]}}'
AFTERSHIP_SECRET = "demo-webhook-secret-not-real"
AFTERSHIP_SIGNATURE = "uySq0VihGDJ6cT5dg4mnMdRv/F1FqtnRs4F9xEWNdh8="
